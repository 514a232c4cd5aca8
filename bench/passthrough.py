"""Raw aiokafka consume -> produce passthrough on the embedded broker: the floor to compare with.

Same broker binary, same records (the handbook's transactions as Avro, GiftPix events as
JSON, on their input topics, keyed by subject), same partition count as the pipeline
benchmark; no decoding, no state, no Faust. A broker of its own, fresh as the pipeline's
was. Bounded by the record count and ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from atalaia.broker import EmbeddedBroker
from atalaia.demo import demo_events, event_record
from atalaia.measure import percentile
from atalaia.publish import publish
from atalaia.sample import interleave
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
    sources: list[str],
    sink: str,
    count: int,
    timeout_s: float,
    result: PassthroughResult,
    ready: asyncio.Event,
) -> float:
    """Copy records from ``sources`` to ``sink``; returns when the last one was acknowledged."""
    consumer = AIOKafkaConsumer(
        *sources,
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
    settings: Settings, transactions: int, gifts: int, rate: float | None, timeout_s: float = 300.0
) -> PassthroughResult:
    """Forward the demo's traffic of ``transactions`` + ``gifts`` events (as the pipeline
    benchmark replays it) from the input topics to one output topic."""
    codec = WireCodec()
    result = PassthroughResult()
    _, tx_events, gift_events = demo_events(settings, transactions, gifts, datetime.now(UTC))
    with EmbeddedBroker() as broker:
        local = settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap_servers,
                "topic_prefix": f"passthrough-{uuid.uuid4().hex[:6]}",
            }
        )
        topics = Topics(local.topic_prefix)
        await ensure_topics(local)
        records = [event_record(codec, topics, e) for e in interleave(tx_events, gift_events)]
        ready = asyncio.Event()
        forwarding = asyncio.create_task(
            _forward(
                broker.bootstrap_servers,
                list(topics.input_models()),
                topics.validated,
                len(records),
                timeout_s,
                result,
                ready,
            )
        )
        await asyncio.wait_for(ready.wait(), timeout=60)
        started = time.monotonic()
        await publish(broker.bootstrap_servers, records, rate=rate)
        result.elapsed_s = await forwarding - started
    return result
