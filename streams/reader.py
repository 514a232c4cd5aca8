"""Reading whole topics without a consumer group: once (tail, the demo, tests) or for ever
(the views every worker keeps, the rules follower, the admin API's state)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.codec import DecodeError, WireCodec
from schemas.models import WireModel
from streams.end_offsets import true_end_offsets
from streams.stopping import despite_unreachable_broker

M = TypeVar("M", bound=WireModel)
log = logging.getLogger(__name__)

Positions = dict[TopicPartition, int]
"""Per partition, the offset of the next record to read."""
Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]

FOLLOW_RETRY_S = 1.0
"""How long a follower waits before reading again after the broker failed it."""


class MissingTopicError(Exception):
    """A topic to read is not on the broker; one line for the operator."""


async def read_topics(
    bootstrap_servers: str,
    topics: list[str],
    from_beginning: bool = True,
    idle_timeout_s: float | None = None,
    fetch_max_wait_ms: int = 10,
    caught_up: Callable[[], None] | None = None,
    positions: Positions | None = None,
    stop_when_caught_up: bool = False,
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """Yield records of every partition of ``topics``; stop after ``idle_timeout_s`` of silence.

    A partition in ``positions`` is read from there (a position no longer on the broker reads
    from the partition's first record), the others from the beginning or the end.
    ``caught_up`` is called once, when every record that was on the topics when reading began
    has been yielded (at once for empty topics); ``stop_when_caught_up`` ends the read there,
    however slowly the broker answered (an idle timeout is a guess). The caller breaks out
    when it has what it wants; the consumer is closed either way.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        await consumer.topics()  # loads cluster metadata, so partitions are known
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        missing = sorted(set(topics) - {tp.topic for tp in partitions})
        if missing:
            raise MissingTopicError(
                f"topic {', '.join(missing)} does not exist yet (start the worker first)"
            )
        consumer.assign(partitions)
        resumed = positions or {}
        unread = [tp for tp in partitions if tp not in resumed]
        if unread and from_beginning:
            await consumer.seek_to_beginning(*unread)
        elif unread:
            await consumer.seek_to_end(*unread)
        for partition in partitions:
            if partition in resumed:
                consumer.seek(partition, resumed[partition])
        watch_end = caught_up is not None or stop_when_caught_up
        ends: dict[TopicPartition, int] = {}
        if watch_end:
            ends = await true_end_offsets(bootstrap_servers, await consumer.end_offsets(partitions))
        last_record = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last_record < idle_timeout_s:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    last_record = time.monotonic()
                    yield record
            if watch_end and await _reached(consumer, ends):
                if caught_up is not None:
                    caught_up()
                if stop_when_caught_up:
                    return
                watch_end = False
    finally:
        await despite_unreachable_broker(consumer.stop())


async def follow_topics(
    bootstrap_servers: str,
    topics: list[str],
    handle: Handler,
    what: str,
    caught_up: Callable[[], None] | None = None,
    positions: Positions | None = None,
) -> None:
    """Hand every record of ``topics`` to ``handle`` once, in order, for ever: from
    ``positions`` (a partition not in it from its beginning). ``caught_up`` is called once,
    when what the topics held as the follow began has been handled.

    A read the broker fails starts again past the last record handled. aiokafka rides out an
    outage once a consumer is fetching, but one that strikes while a read starts (connecting,
    loading metadata) raised out of the follower and ended it for good: a view that silently
    stopped changing. A record whose ``handle`` failed is handed again.
    """
    next_read = dict(positions or {})
    pending = caught_up

    def reached() -> None:
        nonlocal pending
        if pending is not None:
            pending()
            pending = None

    async def read() -> None:
        signal = reached if pending is not None else None
        records = read_topics(
            bootstrap_servers, topics, True, None, caught_up=signal, positions=next_read
        )
        async with aclosing(records):
            async for record in records:
                await handle(record)
                next_read[TopicPartition(record.topic, record.partition)] = record.offset + 1

    while True:
        try:
            await read()
            return
        except KafkaError as exc:
            log.warning("%s: reading failed (%s); again in %.0f s", what, exc, FOLLOW_RETRY_S)
            await asyncio.sleep(FOLLOW_RETRY_S)


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True


async def read_decoded(
    bootstrap_servers: str,
    accepted: dict[str, tuple[type[M], ...]],
    idle_timeout_s: float = 2.0,
) -> tuple[list[M], int]:
    """Every record of the topics in ``accepted`` (until ``idle_timeout_s`` of silence),
    decoded as one of that topic's models; and how many could not be (skipped)."""
    codec = WireCodec()
    found: list[M] = []
    unreadable = 0
    records = read_topics(bootstrap_servers, list(accepted), True, idle_timeout_s)
    async with aclosing(records):
        async for record in records:
            if record.value is None:
                continue
            try:
                found.append(codec.decode(record.value, accepted[record.topic]))
            except DecodeError:
                unreadable += 1
    return found, unreadable
