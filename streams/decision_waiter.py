"""Waiting for the decision of one event: for synchronous callers of the engine.

One consumer, no group, reads every partition of the decision topic from where it stood at
start-up and resolves whoever is waiting for each event id. Positions are pinned before
``start`` returns, so a decision published after a caller registered is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import DecodeError, WireCodec
from schemas.models import Decision
from streams.reader import MissingTopicError
from streams.stopping import despite_unreachable_broker

log = logging.getLogger(__name__)


class DecisionWaiter:
    def __init__(self, bootstrap_servers: str, topic: str, codec: WireCodec) -> None:
        self.topic, self.codec = topic, codec
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=5
        )
        self._waiting: dict[str, list[asyncio.Future[Decision]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = self._consumer
        await consumer.start()
        await consumer.topics()
        partitions = [
            TopicPartition(self.topic, p)
            for p in sorted(consumer.partitions_for_topic(self.topic) or ())
        ]
        if not partitions:
            await consumer.stop()
            raise MissingTopicError(f"topic {self.topic} does not exist yet (start the worker)")
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolve "end" now, not at the first fetch
        self._task = asyncio.create_task(self._dispatch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await despite_unreachable_broker(self._consumer.stop())

    def expect(self, event_id: str) -> asyncio.Future[Decision]:
        """Register before publishing the event; the future resolves with its decision."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(event_id, []).append(future)
        return future

    def forget(self, event_id: str, future: asyncio.Future[Decision]) -> None:
        waiters = self._waiting.get(event_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiting.pop(event_id, None)

    async def _dispatch(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    self._resolve(record.value)

    def _resolve(self, value: bytes | None) -> None:
        if not self._waiting:
            return
        try:
            decision = self.codec.decode(value, (Decision,))
        except DecodeError as exc:
            log.warning("unreadable decision record: %s", exc)
            return
        for future in self._waiting.pop(decision.event_id, []):
            if not future.done():
                future.set_result(decision)
