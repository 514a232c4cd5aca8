"""A normally batching producer for the engine's outputs, flushed before Faust commits.

Faust's producer writes the table changelogs. Decisions, validated events and the other
outputs go through this producer instead, awaited per batch by the agents (5 ms linger).
Faust flushes its producer before it commits offsets, and ``streams.transport`` makes that
flush also wait for this one, so a committed offset still means its outputs were
acknowledged (at-least-once).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer


class SideProducer:
    def __init__(self, bootstrap_servers: str, linger_ms: int = 5) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._pending: set[asyncio.Future[object]] = set()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer  # every send asks: no lock once started
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, linger_ms=self.linger_ms, acks="all"
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        timestamp_s: float | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[object]:
        """Queue a record; the returned future resolves when the broker acknowledged it."""
        producer = await self._started()
        timestamp_ms = int(timestamp_s * 1000) if timestamp_s is not None else None
        future: asyncio.Future[object] = await producer.send(
            topic, value, key=key, timestamp_ms=timestamp_ms, partition=partition
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    async def flush(self) -> None:
        """Wait for every queued record; raises if one could not be delivered."""
        if self._pending:
            await asyncio.gather(*list(self._pending))

    async def stop(self) -> None:
        if self._producer is not None:
            await self.flush()
            await self._producer.stop()
            self._producer = None
