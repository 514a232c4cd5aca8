"""Publishing records to the input topics, batched (awaiting each send is ~10x slower)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from atalaia.progress import Progress

_IN_FLIGHT = 1000


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes


async def publish(
    bootstrap_servers: str,
    records: Iterable[OutRecord],
    progress: Progress | None = None,
    rate: float | None = None,
) -> int:
    """Send every record and wait until the broker acknowledged all of them.

    ``rate`` paces sending to that many records per second (for latency measurements).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, acks="all")
    sent = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await producer.start()
        pending = []
        for index, record in enumerate(records):
            if rate:
                delay = started + index / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(record.topic, record.value, key=record.key))
            if len(pending) >= _IN_FLIGHT:
                await asyncio.gather(*pending)
                sent += len(pending)
                if progress:
                    progress.advance(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        sent += len(pending)
        if progress:
            progress.advance(len(pending))
            progress.finish()
    finally:
        await producer.stop()
    return sent
