"""A batching producer for the engine's outputs, flushed before Faust commits.

Faust's producer writes the changelogs of tables written through Faust. Decisions,
validated events, the scoring agent's state changelog and the other outputs go through this
producer instead, awaited per batch by the agents. It does not linger: an agent queues a
whole batch's records before it awaits them, and queuing yields to the sender only when a
partition's batch is full, so they travel together anyway and a linger only idles the agent
between its batches. Batches hold up to 256 KB (aiokafka's default is 16 KB): a fuller
partition batch makes the agent wait for the broker in the middle of its own batch. Both
measured on the scoring worker's burst (docs/adr/0004-state-writes-beside-faust.md): the
5 ms linger cost ~20%, the 16 KB batches ~15%. ``send_all`` builds each partition's batches
itself (aiokafka's batch API) and waits for one acknowledgement per batch: ~5 µs less CPU
per record than a future per record (``bench.faust_floor``: ~166 -> ~146 µs per event of
the agent's shape).
Faust flushes its producer before it commits offsets, and ``streams.transport`` makes that
flush also wait for this one, so a committed offset still means its outputs were
acknowledged (at-least-once).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any, TypeVar, cast

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from streams.partitioning import owner_partition

MAX_BATCH_BYTES = 256 * 1024
"""Per partition; a quarter of a broker's default limit on a record batch (1 MB)."""

SideRecord = tuple[str, bytes | None, bytes, float | None, int | None]
"""Topic, key, value, timestamp in seconds (None: now), partition (None: by the key)."""

T = TypeVar("T")


def _ms(timestamp_s: float | None) -> int | None:
    return int(timestamp_s * 1000) if timestamp_s is not None else None


class SideProducer:
    def __init__(self, bootstrap_servers: str, linger_ms: int = 0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._pending: set[asyncio.Future[Any]] = set()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer  # every send asks: no lock once started
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    linger_ms=self.linger_ms,
                    acks="all",
                    max_batch_size=MAX_BATCH_BYTES,
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
        future: asyncio.Future[object] = await producer.send(
            topic, value, key=key, timestamp_ms=_ms(timestamp_s), partition=partition
        )
        return self._pending_until_done(future)

    async def send_all(self, records: Iterable[SideRecord]) -> list[RecordMetadata]:
        """Queue every record, then wait until the broker acknowledged them all; their
        positions, in order. Each partition's records go as whole batches, in their order."""
        producer = await self._started()
        rows = list(records)
        by_partition: dict[TopicPartition, list[int]] = {}
        counts: dict[str, int] = {}
        for index, (topic, key, _, _, partition) in enumerate(rows):
            if partition is None:
                if topic not in counts:
                    counts[topic] = len(await producer.partitions_for(topic))
                # As the default partitioner: murmur2 of the key, a random partition without.
                partition = (
                    owner_partition(key, counts[topic])
                    if key is not None
                    else random.randrange(counts[topic])
                )
            by_partition.setdefault(TopicPartition(topic, partition), []).append(index)
        batches: list[asyncio.Future[RecordMetadata]] = []
        members: list[list[tuple[int, int, int]]] = []  # per batch: record, offset in it, ts
        for tp, indices in by_partition.items():
            builder = producer.create_batch()
            members.append([])
            for index in indices:
                _, key, value, timestamp_s, _ = rows[index]
                timestamp_ms = _ms(timestamp_s)
                added = builder.append(timestamp=timestamp_ms, key=key, value=value)
                if added is None:  # full: send it and start another, which takes any size
                    batches.append(await self._send_batch(producer, builder, tp))
                    builder = producer.create_batch()
                    members.append([])
                    added = builder.append(timestamp=timestamp_ms, key=key, value=value)
                members[-1].append((index, added.offset, added.timestamp))
            batches.append(await self._send_batch(producer, builder, tp))
        acknowledged: list[RecordMetadata] = await asyncio.gather(*batches)
        positions: list[RecordMetadata | None] = [None] * len(rows)
        for batch, appended in zip(acknowledged, members, strict=True):
            for index, offset, timestamp in appended:
                # The broker answers -1 when it keeps the records' own timestamps.
                stored_at = timestamp if batch.timestamp == -1 else batch.timestamp
                positions[index] = batch._replace(offset=batch.offset + offset, timestamp=stored_at)
        return cast(list[RecordMetadata], positions)

    async def _send_batch(
        self, producer: AIOKafkaProducer, builder: BatchBuilder, tp: TopicPartition
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = await producer.send_batch(
            builder, tp.topic, partition=tp.partition
        )
        return self._pending_until_done(future)

    def _pending_until_done(self, future: asyncio.Future[T]) -> asyncio.Future[T]:
        """Kept for ``flush`` until the broker answers."""
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
