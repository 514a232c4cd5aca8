"""Reading topics from where a reader left off, on the real broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from config.settings import Settings
from streams.reader import follow_topics, read_topics
from streams.topics import Topics

pytestmark = pytest.mark.integration


async def _put(bootstrap: str, topic: str, per_partition: dict[int, int], tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for n in range(count):
                value = f"{tag}-{partition}-{n}".encode()
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


def test_a_read_resumes_each_partition_at_its_position(engine_settings: Settings) -> None:
    """Partition 0 from offset 3, the two others (not in the positions) from the beginning."""
    bootstrap = engine_settings.bootstrap_servers
    topic = Topics(engine_settings.topic_prefix).decisions

    async def scenario() -> list[tuple[int, int]]:
        await _put(bootstrap, topic, {0: 5, 1: 2}, "r")
        records = read_topics(
            bootstrap, [topic], True, 1.0, positions={TopicPartition(topic, 0): 3}
        )
        return sorted([(r.partition, r.offset) async for r in records])

    assert asyncio.run(scenario()) == [(0, 3), (0, 4), (1, 0), (1, 1)]


def test_a_read_until_caught_up_ends_at_the_end_it_found(engine_settings: Settings) -> None:
    """No idle timeout: the read ends once it has yielded what the topic held when it began,
    across partitions and the empty ones."""
    bootstrap = engine_settings.bootstrap_servers
    topic = Topics(engine_settings.topic_prefix).decisions

    async def scenario() -> list[tuple[int, int]]:
        await _put(bootstrap, topic, {0: 3, 2: 2}, "c")
        records = read_topics(bootstrap, [topic], stop_when_caught_up=True)
        return sorted([(r.partition, r.offset) async for r in records])

    read = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert read == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]


def test_a_follower_hands_each_record_once_across_a_failed_read(
    engine_settings: Settings,
) -> None:
    """The read fails on the third record (the broker error comes from the handler here, the
    same path as one from the client): the follower reads again past the two it handled, hands
    the third again, signals once that it caught up, and goes on with what comes later."""
    bootstrap = engine_settings.bootstrap_servers
    topic = Topics(engine_settings.topic_prefix).decisions
    handed: list[bytes] = []
    caught_up: list[int] = []

    async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        assert record.value is not None
        handed.append(record.value)
        if record.value == b"a-0-2" and handed.count(b"a-0-2") == 1:
            raise KafkaConnectionError("the broker went away")

    async def scenario() -> None:
        await _put(bootstrap, topic, {0: 4}, "a")
        follower = asyncio.create_task(
            follow_topics(bootstrap, [topic], handle, "test follower", lambda: caught_up.append(1))
        )
        try:
            for _ in range(300):
                if caught_up:
                    break
                await asyncio.sleep(0.05)
            await _put(bootstrap, topic, {0: 1, 2: 1}, "b")
            for _ in range(300):
                if len(handed) == 7:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # nothing more may come
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    asyncio.run(scenario())
    assert handed[:5] == [b"a-0-0", b"a-0-1", b"a-0-2", b"a-0-2", b"a-0-3"]
    assert sorted(handed[5:]) == [b"b-0-0", b"b-2-0"]
    assert caught_up == [1]
