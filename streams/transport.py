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
The records of a fetch are handed out in event-time order across the input topics; from a
backlog each chunk is cut and its rest held for the next fetch (``streams.alignment``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from itertools import chain
from typing import Any, Protocol, cast

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from streams.alignment import TimeOf, cut_in_publishing_order
from streams.end_offsets import true_end_offsets
from streams.side_producer import SideProducer
from streams.stopping import despite_unreachable_broker

log = logging.getLogger(__name__)

# Long enough for the record loop to notice the stopped flow; a rebalance is not latency bound.
_STALE_FETCH_DRAIN_S = 0.05
BACKLOG_RECORDS = 20
"""An input partition this far behind its end is read from a backlog (``streams.alignment``)."""
ALIGN_WAIT_S = 0.5
"""How long the other input topics of a partition number wait for one left out of fetches."""
NOTHING_HANDED = -(2**63)
"""The time handed out of a partition not yet cut: the others wait for all of it."""
FINAL_COMMIT_S = 5.0
"""How long a stopping consumer tries to commit: with the broker gone, aiokafka retries a
commit for as long as no group coordinator answers."""


class _TunedApp(Protocol):
    fetch_max_wait_ms: int
    correct_end_offsets: bool
    bootstrap_servers: str
    side_producer: SideProducer
    aligned_topics: frozenset[str]
    time_of: TimeOf


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

    async def read_again_from(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` again from ``offset`` (on the consumer's thread, before its next
        fetch); a partition no longer assigned is left to the rebalance's own seek."""

        async def seek() -> None:
            with contextlib.suppress(IllegalStateError):
                self._ensure_consumer().seek(tp, offset)

        await self.call_thread(seek)

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

    _handed_until: dict[TP, int]
    _absent_since: dict[TP, float]
    _held: dict[TP, list[Any]]
    """Records of a cut partition not handed out yet, in offset order: handed out with the
    next fetch's (the fetcher has already moved past them)."""
    _held_generation: int | None

    def on_init(self) -> None:
        super().on_init()
        self._handed_until, self._absent_since, self._held = {}, {}, {}
        self._held_generation = None

    async def _with_held(
        self, records: Mapping[TP, list[Any]], active: set[TP] | None, generation_id: int
    ) -> dict[TP, list[Any]]:
        """This fetch's records with those held from the last cut before them. Held records
        are dropped when a rebalance or seek came between (Faust reads them again from the
        committed offsets); a partition whose next records are not the ones after them (it
        was sought) or that Faust no longer hands out is sought back to its first held one."""
        merged = dict(records)
        held, self._held = self._held, {}
        if not held or self._held_generation != generation_id:
            return merged
        assigned = self.assignment()
        for tp, kept in held.items():
            fetched = merged.get(tp)
            handed_out = active is None or tp in active or tp in self._buffered_partitions
            follows = not fetched or fetched[0].offset == kept[-1].offset + 1
            if tp in assigned and handed_out and follows:
                merged[tp] = kept + list(fetched or ())
            elif tp in assigned:
                merged.pop(tp, None)
                await cast(_ConsumerThread, self._thread).read_again_from(tp, kept[0].offset)
        return merged

    def _waiting_for(self, records: Mapping[TP, Any]) -> tuple[set[int], dict[int, int]]:
        """Partition numbers read from a backlog: an input topic partition more than
        ``BACKLOG_RECORDS`` behind its end before this fetch (only there is the hand-out cut:
        live traffic comes a few records a fetch, and a cut would only delay it a fetch).
        And for those, the earliest time handed out of an input topic partition this fetch
        left out although it has records still to read, or may have (not read yet since the
        assignment: its end or position unknown): the others wait for it, for
        ``ALIGN_WAIT_S`` at most since it last moved on (its high-water mark may be wrong,
        Faust may have paused it, or it may have nothing at all)."""
        aligned = cast(_TunedApp, self.app).aligned_topics
        now = time.monotonic()
        backlogged, behind = set[int](), dict[int, int]()
        for tp in self.assignment():
            if tp.topic not in aligned:
                continue
            fetched, end = records.get(tp), self.highwater(tp)
            read = fetched[0].offset - 1 if fetched else self._read_offset.get(tp)
            if read is not None and end is not None:
                if end <= read + 1:
                    self._absent_since.pop(tp, None)
                    continue
                if end - read - 1 > BACKLOG_RECORDS:
                    backlogged.add(tp.partition)
            if fetched:
                continue
            if now - self._absent_since.setdefault(tp, now) > ALIGN_WAIT_S:
                continue
            until = self._handed_until.get(tp, NOTHING_HANDED)
            behind[tp.partition] = min(behind.get(tp.partition, until), until)
        return backlogged, {n: at for n, at in behind.items() if n in backlogged}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's ``Consumer.getmany`` (faust-streaming 0.15.3) with the input topics' records
        handed out in event-time order: the rest of each cut partition is held and handed out
        before the next fetch's records of it (seeking it back instead made the topics of a
        partition number come in alternate fetches, each waiting for the other); an
        interrupted hand-out (rebalance, stopped flow) leaves it all to the seek that follows,
        as Faust does with its own rest."""
        fetched, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if fetched is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()  # drops what is held
            except Exception as exc:
                log.warning("seeking while the flow is stopped failed: %s", exc)
            return
        records = await self._with_held(fetched, active_partitions, generation_id)
        app = cast(_TunedApp, self.app)
        backlogged, behind = self._waiting_for(records)
        cut = cut_in_publishing_order(records, app.aligned_topics, app.time_of, behind, backlogged)
        self._handed_until.update(cut.handed_until)
        for tp in cut.handed_until:  # it moved on: wait for it again when it falls behind
            self._absent_since.pop(tp, None)
        as_fetched = set(cut.as_fetched)
        others = {
            tp: batch
            for tp, batch in records.items()
            if tp.topic not in app.aligned_topics or tp in as_fetched
        }
        for tp, record in chain(self.scheduler.iterate(others), cut.now):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                return  # Faust seeks back to the committed offsets: nothing is held
            if (
                active_partitions is None
                or tp in active_partitions
                or (tp in self._buffered_partitions)
            ):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, self._to_message(tp, record)
        self._held = {
            tp: [record for record in records[tp] if record.offset >= offset]
            for tp, offset in cut.rest_from.items()
        }
        self._held_generation = generation_id

    async def perform_seek(self) -> None:
        """Stop handing out records fetched before the seek, then seek (Faust resumes)."""
        self.stop_flow()
        self._held.clear()
        await asyncio.sleep(_STALE_FETCH_DRAIN_S)
        await super().perform_seek()


class _Producer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        await super().flush()
        await cast(_TunedApp, self.app).side_producer.flush()


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
