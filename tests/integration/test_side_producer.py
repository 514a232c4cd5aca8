"""The side producer's flush returns only when the broker has every queued record."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from aiokafka.structs import RecordMetadata

from config.settings import Settings
from streams.partitioning import owner_partition
from streams.reader import read_topics
from streams.side_producer import MAX_BATCH_BYTES, SideProducer, SideRecord
from streams.topics import Topics

pytestmark = pytest.mark.integration


def test_flush_waits_for_every_queued_record(engine_settings: Settings) -> None:
    topic = Topics(engine_settings.topic_prefix).decisions

    async def scenario() -> list[bytes]:
        producer = SideProducer(engine_settings.bootstrap_servers, linger_ms=50)
        futures = [await producer.send(topic, b"k", f"v{n}".encode()) for n in range(500)]
        assert not all(f.done() for f in futures)  # still in flight: linger holds them
        await producer.flush()
        assert all(f.done() and f.exception() is None for f in futures)
        await producer.stop()
        records = read_topics(engine_settings.bootstrap_servers, [topic], True, 1.0)
        async with aclosing(records):
            return [record.value async for record in records if record.value is not None]

    values = asyncio.run(scenario())
    assert sorted(values) == sorted(f"v{n}".encode() for n in range(500))


def test_full_size_batches_and_a_record_larger_than_a_batch_are_stored(
    engine_settings: Settings,
) -> None:
    """Records queued without a pause fill partition batches up to ``MAX_BATCH_BYTES``; the
    broker takes batches that size, and a record larger than a batch travels on its own."""
    topic = Topics(engine_settings.topic_prefix).decisions
    values = [n.to_bytes(4, "big") * 256 for n in range(1_000)]  # 1 KB each: ~4 full batches
    values.append(b"x" * (MAX_BATCH_BYTES + 1))

    async def scenario() -> list[bytes]:
        producer = SideProducer(engine_settings.bootstrap_servers)
        sent = [await producer.send(topic, b"one-key", value, partition=0) for value in values]
        await asyncio.gather(*sent)
        await producer.stop()
        records = read_topics(engine_settings.bootstrap_servers, [topic], True, 1.0)
        async with aclosing(records):
            return [record.value async for record in records if record.value is not None]

    assert asyncio.run(scenario()) == values  # all of them, in order


def test_send_all_returns_each_records_position_once_the_broker_has_them_all(
    engine_settings: Settings,
) -> None:
    topic = Topics(engine_settings.topic_prefix).decisions
    records: list[SideRecord] = [
        (topic, f"k{n}".encode(), f"v{n}".encode(), 1_700_000_000.0 + n, n % 2) for n in range(300)
    ]

    async def scenario() -> tuple[list[RecordMetadata], list[tuple[int, int, bytes | None]]]:
        producer = SideProducer(engine_settings.bootstrap_servers, linger_ms=50)
        positions = await producer.send_all(records)
        await producer.stop()
        stored = read_topics(engine_settings.bootstrap_servers, [topic], True, 1.0)
        async with aclosing(stored):
            return positions, [(r.partition, r.timestamp, r.value) async for r in stored]

    positions, stored = asyncio.run(scenario())
    assert [(p.partition, p.offset) for p in positions] == [(n % 2, n // 2) for n in range(300)]
    assert sorted(stored) == sorted(
        (n % 2, 1_700_000_000_000 + n * 1000, f"v{n}".encode()) for n in range(300)
    )


def test_send_all_fills_batches_by_partition_and_takes_a_record_larger_than_a_batch(
    engine_settings: Settings,
) -> None:
    """Records without a partition go where the default partitioner puts their key; one
    partition's records span several full batches and a record larger than a batch, in order."""
    topics = Topics(engine_settings.topic_prefix)
    big = [(topics.decisions, b"one-key", n.to_bytes(4, "big") * 256, None, 0) for n in range(600)]
    big.insert(300, (topics.decisions, b"one-key", b"x" * (MAX_BATCH_BYTES + 1), None, 0))
    events = topics.fraud_events
    keyed = [(events, f"k{n}".encode(), f"v{n}".encode(), None, None) for n in range(50)]
    records: list[SideRecord] = list(big)
    for n, record in enumerate(keyed):  # interleaved with the first of the others
        records.insert(2 * n + 1, record)

    async def scenario() -> tuple[list[RecordMetadata], list[tuple[str, int, bytes | None]]]:
        producer = SideProducer(engine_settings.bootstrap_servers)
        positions = await producer.send_all(records)
        await producer.stop()
        stored = read_topics(
            engine_settings.bootstrap_servers, [topics.decisions, topics.fraud_events], True, 1.0
        )
        async with aclosing(stored):
            return positions, [(r.topic, r.partition, r.value) async for r in stored]

    positions, stored = asyncio.run(scenario())
    partitions = engine_settings.partitions
    expected = [
        (topic, partition if partition is not None else owner_partition(key, partitions))
        for topic, key, _, _, partition in records
    ]
    assert [(p.topic, p.partition) for p in positions] == expected
    assert [p.offset for p in positions if p.topic == topics.decisions] == list(range(601))
    assert [value for topic, _, value in stored if topic == topics.decisions] == [
        value for _, _, value, _, _ in big
    ]
    assert sorted((t, p, v) for t, p, v in stored if t == topics.fraud_events) == sorted(
        (t, owner_partition(k, partitions), v) for t, k, v, _, _ in keyed if k is not None
    )
