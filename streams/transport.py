"""Faust's aiokafka transport, with a configurable consumer fetch wait and a flush that also
waits for the side producer.

faust-streaming 0.15.3 hard-codes ``fetch_max_wait_ms=1500``. On Tansu an empty fetch is held
for that whole time, so end-to-end latency was seconds; the broker profile sets the value.
Faust flushes its producer before committing offsets: flushing the side producer there too
keeps at-least-once for the outputs sent through it (``streams.side_producer``).
Where the broker profile says ListOffsets is wrong for multi-record batches (Tansu), the end
offsets Faust's table recovery reads are corrected first (``streams.end_offsets``).
After a rebalance Faust drops (and acknowledges) the records its streams receive while it
recovers, then seeks back to the committed offsets to read them again. Two gaps made that
lose records: aiokafka does not seek a partition with no committed offset (a new group) or
offset 0, so those partitions are sought to the beginning, as the ``earliest`` reset policy
means; and a fetch answered before the seek kept being handed out after it, moving Faust's
read offsets past the records it was about to read again, so the consumer's flow is stopped
(which ends that hand-out) before seeking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol, cast

from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.end_offsets import true_end_offsets
from streams.side_producer import SideProducer
from streams.stopping import despite_unreachable_broker

log = logging.getLogger(__name__)

# Long enough for the record loop to notice the stopped flow; a rebalance is not latency bound.
_STALE_FETCH_DRAIN_S = 0.05
FINAL_COMMIT_S = 5.0
"""How long a stopping consumer tries to commit: with the broker gone, aiokafka retries a
commit for as long as no group coordinator answers."""


class _TunedApp(Protocol):
    fetch_max_wait_ms: int
    correct_end_offsets: bool
    bootstrap_servers: str
    side_producer: SideProducer


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher, at consumer start.
        consumer._fetch_max_wait_ms = cast(_TunedApp, self.app).fetch_max_wait_ms
        return consumer

    async def on_thread_stop(self) -> None:
        await despite_unreachable_broker(super().on_thread_stop())

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return cast(Mapping[Any, int], await self.call_thread(self._seek_to_committed_or_beginning))

    async def _seek_to_committed_or_beginning(self) -> Mapping[TopicPartition, int | None]:
        consumer = self._ensure_consumer()
        committed: Mapping[TopicPartition, int | None] = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # positioned by Faust's recovery
        never_committed = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if never_committed:
            await consumer.seek_to_beginning(*never_committed)
        return committed

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        """End offsets for table recovery (the only reader), corrected where the broker errs."""
        reported = await super()._highwaters(partitions)
        app = cast(_TunedApp, self.app)
        if not app.correct_end_offsets or self.consumer.in_transaction:
            return reported
        return await true_end_offsets(app.bootstrap_servers, reported)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_stop(self) -> None:
        """Commit what is safe, as Faust does when its consumer stops, for at most
        ``FINAL_COMMIT_S``; past it stop without: those offsets are read and decided again on
        restart (at-least-once, dedupe by event id)."""
        try:
            await asyncio.wait_for(super().on_stop(), FINAL_COMMIT_S)
        except TimeoutError:
            log.warning(
                "the final commit did not finish within %g s (broker unreachable?): "
                "stopping without it; the uncommitted events are read again on restart",
                FINAL_COMMIT_S,
            )

    async def perform_seek(self) -> None:
        """Stop handing out records fetched before the seek, then seek (Faust resumes)."""
        self.stop_flow()
        await asyncio.sleep(_STALE_FETCH_DRAIN_S)
        await super().perform_seek()


class _Producer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        await super().flush()
        await cast(_TunedApp, self.app).side_producer.flush()


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
