"""Faust's floor on this machine: the scoring agent's shape with none of its work.

A Faust worker process (same app settings, transport, side producer, uvloop and GC tuning as
``atalaia worker``) reads the same Avro-framed transactions in batches, writes ``--writes``
states of ``--state-bytes`` per event (each to its own key) and sends ``--sends`` records per
event through the side producer, awaited per batch: what every event costs before any
decoding, scoring or encoding. States are written as the scoring agent writes them: to the
RocksDB table's store, their changelog records sent with the batch's other records and the
persisted offsets set per batch, by the agent's own ``send_batch`` and ``persist_offsets``;
``--through-table`` writes them through Faust's table instead (a changelog send through
Faust's producer and a persisted-offset write per record), to compare. The defaults are
the minimum (one write of the record, one send); ``--writes 2 --sends 2 --state-bytes 2000``
is about the scoring agent's shape (bench/scorer.py counts 1.9 state writes of ~1.9 KB and
1.6 outputs per event). Next to the raw aiokafka passthrough and the pipeline benchmark, it
splits a worker's time into the framework's and ours. Bounded: a fixed count, every wait a
timeout.

    .venv/bin/python -m bench.faust_floor [--events 20000] [--writes 1] [--sends 1]
                                          [--state-bytes 0] [--through-table]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from faust.streams import Stream
from faust.types import StoreT

from agents.current import as_current
from agents.scoring import Batch, persist_offsets, send_batch
from atalaia.broker import EmbeddedBroker
from atalaia.demo import local_settings
from atalaia.measure import percentile
from atalaia.publish import OutRecord, publish
from atalaia.sample import synthetic_transactions
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess, interrupt_on_sigterm, stop_with_supervisor
from bench.results import record_result
from config.settings import Settings, load_settings
from schemas.codec import WireCodec
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics

READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 300.0
SERVE = "serve"
SHAPE_ENV = "BENCH_FLOOR_SHAPE"
"""How the benchmark tells its worker process the shape: ``writes,sends,state_bytes,table``."""


@dataclass(frozen=True)
class Shape:
    writes: int = 1
    sends: int = 1
    state_bytes: int = 0
    """0: each state is the record's own value."""
    through_table: bool = False

    def encoded(self) -> str:
        return f"{self.writes},{self.sends},{self.state_bytes},{int(self.through_table)}"

    @classmethod
    def decoded(cls, text: str) -> Shape:
        writes, sends, state_bytes, through_table = (int(part) for part in text.split(","))
        return cls(writes, sends, state_bytes, bool(through_table))


def serve(settings: Settings, shape: Shape) -> None:
    """The floor worker (in its own process, as the engine's worker runs)."""
    import faust

    from streams.app import new_app, run_until_stopped

    app = new_app(settings, f"{settings.app_id}-floor")
    topics = Topics(settings.topic_prefix)
    source = app.topic(topics.transactions, key_type=bytes, value_type=bytes)
    table = app.Table("floor", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    store = cast(StoreT[bytes, bytes], table.data)
    producer = app.side_producer

    async def forward(stream: faust.StreamT[bytes]) -> None:
        window_s = settings.batch_window_ms / 1000
        changelog = table.changelog_topic.get_topic_name()
        async for records in cast(Stream[bytes], stream).take_events(settings.batch_size, window_s):
            batch = Batch([], {}, frozenset())
            for record in records:
                message = record.message
                value = message.value or b""
                key = message.key or b""
                state = os.urandom(shape.state_bytes) if shape.state_bytes else value
                with as_current(record):
                    for n in range(shape.writes):
                        state_key = key + b"#%d" % n
                        if shape.through_table:
                            table[state_key] = state
                        else:
                            store[state_key] = state
                            batch.changelog.append((state_key, state, message.partition))
                output = (topics.validated, key, value, message.timestamp, None)
                batch.outputs += [output] * shape.sends
            persist_offsets(store, await send_batch(producer, batch, changelog))

    app.agent(source, name="floor")(forward)
    run_until_stopped(app, settings, "bench")


async def _forwarded(
    bootstrap: str, topic: str, wanted: int, latencies_ms: list[int], timeout_s: float
) -> float:
    """Read ``wanted`` records of ``topic``; the time the last one was read."""
    last = time.monotonic()
    seen = 0
    records = read_topics(bootstrap, [topic], True, timeout_s)
    async with aclosing(records):
        async for record in records:
            last = time.monotonic()
            latencies_ms.append(int(time.time() * 1000 - record.timestamp))
            seen += 1
            if seen == wanted:
                return last
    raise TimeoutError(f"{seen} of {wanted} records forwarded within {timeout_s:.0f}s of silence")


async def measure(
    settings: Settings, events: int, shape: Shape, workdir: Path
) -> dict[str, object]:
    codec = WireCodec()
    with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
        local = local_settings(settings, broker.bootstrap_servers, workdir, "floor")
        topics = Topics(local.topic_prefix)
        await ensure_topics(local)
        worker = WorkerProcess(local, workdir / "floor.log", SERVE, module="bench.faust_floor")
        os.environ[SHAPE_ENV] = shape.encoded()
        worker.start()
        try:
            transactions = synthetic_transactions(events + 1, datetime.now(UTC))
            records = [
                OutRecord(topics.transactions, t.user_id.encode(), codec.encode(t))
                for t in transactions
            ]
            started = time.monotonic()
            await publish(broker.bootstrap_servers, records[:1])  # through once: group joined
            await _forwarded(
                broker.bootstrap_servers, topics.validated, shape.sends, [], READY_TIMEOUT_S
            )
            ready_s = time.monotonic() - started
            latencies_ms: list[int] = []
            wanted = (events + 1) * shape.sends  # the warm-up's are read again
            reading = asyncio.create_task(
                _forwarded(broker.bootstrap_servers, topics.validated, wanted, latencies_ms, 30.0)
            )
            started = time.monotonic()
            await publish(broker.bootstrap_servers, records[1:])
            elapsed_s = await asyncio.wait_for(reading, RUN_TIMEOUT_S) - started
        finally:
            worker.stop()
    measured = latencies_ms[shape.sends :]  # not the warm-up's
    return {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "events": events,
        "state_writes_per_event": shape.writes,
        "sends_per_event": shape.sends,
        "state_bytes": shape.state_bytes or "the record's value",
        "states_written": "through Faust's table" if shape.through_table else "to the store",
        "worker_ready_s": round(ready_s, 1),
        "events_per_s": round(events / elapsed_s),
        "p50_ms": percentile(measured, 0.50),
        "p99_ms": percentile(measured, 0.99),
    }


def _between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def main() -> int:
    if sys.argv[1:] == [SERVE]:
        stop_with_supervisor()
        serve(load_settings(), Shape.decoded(os.environ[SHAPE_ENV]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=_between(1, 1_000_000), default=20_000)
    parser.add_argument("--writes", type=_between(1, 10), default=1)
    parser.add_argument("--sends", type=_between(1, 10), default=1)
    parser.add_argument("--state-bytes", type=_between(0, 65_536), default=0)
    parser.add_argument(
        "--through-table", action="store_true", help="write states through Faust's table"
    )
    args = parser.parse_args()
    shape = Shape(args.writes, args.sends, args.state_bytes, args.through_table)
    interrupt_on_sigterm()
    with scratch_directory("atalaia-floor-") as tmp:
        report = asyncio.run(measure(load_settings(), args.events, shape, Path(tmp)))
    print(json.dumps(report, indent=2))
    print(f"recorded in {record_result('faust_floor', report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
