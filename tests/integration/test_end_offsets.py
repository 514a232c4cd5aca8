"""End offsets for table recovery are exact on the real broker, whatever its batching."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from streams.end_offsets import true_end_offsets
from streams.topics import Topics

pytestmark = pytest.mark.integration


def test_end_offsets_count_every_record_of_multi_record_batches(
    engine_settings: Settings,
) -> None:
    """Three batches of ten records on one partition, one record on another, one empty."""
    topic = Topics(engine_settings.topic_prefix).decisions
    bootstrap = engine_settings.bootstrap_servers

    async def scenario() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
        await producer.start()
        for round_ in range(3):
            sends = [
                await producer.send(topic, f"r{round_}-{n}".encode(), partition=0)
                for n in range(10)
            ]
            await asyncio.gather(*sends)  # one batch of ten per round
        await producer.send_and_wait(topic, b"alone", partition=1)
        await producer.stop()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        reported = await consumer.end_offsets(partitions)
        await consumer.stop()
        return reported, await true_end_offsets(bootstrap, reported)

    reported, corrected = asyncio.run(scenario())
    assert corrected == {
        TopicPartition(topic, 0): 30,
        TopicPartition(topic, 1): 1,
        TopicPartition(topic, 2): 0,
    }
    assert all(corrected[tp] >= reported[tp] for tp in reported)
    print(f"reported by ListOffsets: {reported}")
