"""Raw aiokafka consume -> produce passthrough on the embedded broker: the floor to compare with.

Same broker binary, same records (Avro-framed transactions), same partition count as the
pipeline benchmark; no decoding, no state, no Faust. Bounded by ``count`` and ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from atalaia.broker import EmbeddedBroker
from atalaia.measure import percentile
from atalaia.publish import OutRecord, publish
from atalaia.sample import synthetic_transactions
from config.settings import Settings
from schemas.codec import WireCodec
from streams.admin import ensure_topics
from streams.topics import Topics

GROUP_JOIN_S = 8.0  # Tansu answers a join after half the 10 s session timeout


@dataclass
class PassthroughResult:
    forwarded: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.forwarded / self.elapsed_s if self.elapsed_s else 0.0

    def latency_percentile(self, q: float) -> int:
        return percentile(self.latencies_ms, q)


async def _forward(
    bootstrap: str,
    source: str,
    sink: str,
    count: int,
    timeout_s: float,
    result: PassthroughResult,
    ready: asyncio.Event,
) -> float:
    """Copy records from ``source`` to ``sink``; returns when the last one was acknowledged."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"passthrough-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    finished = time.monotonic()
    try:
        await consumer.start()
        await producer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        deadline = time.monotonic() + timeout_s
        while result.forwarded < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            records = [r for rs in batches.values() for r in rs]
            sends = [await producer.send(sink, r.value, key=r.key) for r in records]
            await asyncio.gather(*sends)
            now_ms = time.time() * 1000
            result.latencies_ms += [int(now_ms - r.timestamp) for r in records]
            result.forwarded += len(records)
            if records:
                await consumer.commit()
                finished = time.monotonic()
    finally:
        await producer.stop()
        await consumer.stop()
    return finished


async def run_passthrough(
    settings: Settings, count: int, rate: float | None, timeout_s: float = 300.0
) -> PassthroughResult:
    codec = WireCodec()
    result = PassthroughResult()
    with EmbeddedBroker() as broker:
        local = settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap_servers,
                "topic_prefix": f"passthrough-{uuid.uuid4().hex[:6]}",
            }
        )
        topics = Topics(local.topic_prefix)
        await ensure_topics(local)
        ready = asyncio.Event()
        forwarding = asyncio.create_task(
            _forward(
                broker.bootstrap_servers,
                topics.transactions,
                topics.validated,
                count,
                timeout_s,
                result,
                ready,
            )
        )
        await asyncio.wait_for(ready.wait(), timeout=60)
        events = synthetic_transactions(count, datetime.now(UTC))
        records = [
            OutRecord(topics.transactions, e.user_id.encode(), codec.encode(e)) for e in events
        ]
        started = time.monotonic()
        await publish(broker.bootstrap_servers, records, rate=rate)
        result.elapsed_s = await forwarding - started
    return result
