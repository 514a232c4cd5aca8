"""A stateful rule engine written plainly in Quix Streams, on the same broker: the reference row.

The pipeline benchmark compares the worker with a raw aiokafka passthrough, the floor of any
consumer; this is the other reference point: the same handbook transactions through a
four-line rule over a 1 h window per customer and a 1 day window per terminal, kept in
RocksDB by Quix Streams (``bench/quix_app.py``), at-least-once, on an embedded Tansu broker of
its own with the same partition count. Measured as the pipeline benchmark measures the worker:
a burst (every record published at once, events/s from the first publish to the last
decision, the app already consuming) and a paced run (latency from each record's broker
timestamp to its decision's arrival). Quix Streams pins versions of pydantic the engine does
not run with, so it runs from a virtual environment of its own, created on first use in the
system's temporary folder (``pip install quixstreams``). Bounded: fixed counts, every wait a
timeout.

    .venv/bin/python -m bench.quix_rules [--transactions 20000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from atalaia.broker import EmbeddedBroker
from atalaia.demo import demo_events
from atalaia.measure import percentile
from atalaia.publish import OutRecord, publish
from atalaia.supervise import interrupt_on_sigterm
from bench.results import record_result
from config.settings import load_settings
from schemas.models import TransactionEvent
from streams.reader import read_topics

QUIX = "quixstreams==3.28.1"
APP = Path(__file__).resolve().parent / "quix_app.py"
TOPIC_CONFIGS = {"retention.ms": "604800000", "retention.bytes": "-1"}
"""Set at creation: Tansu describes only the configs a topic was created with, and Quix
Streams reads its input topic's retention."""
READY_TIMEOUT_S = 120.0
"""The app's start, group join and first decision (Tansu answers a join after 5 s)."""
IDLE_TIMEOUT_S = 60.0
"""No decision for this long ends a run: the app is stuck or dead."""


@dataclass
class QuixResult:
    decided: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[int] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.decided / self.elapsed_s if self.elapsed_s else 0.0


def quix_python() -> Path:
    """The interpreter of Quix's own virtual environment, created on first use."""
    venv = Path(tempfile.gettempdir()) / "atalaia-bench-quix"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        install = [str(python), "-m", "pip", "install", "--quiet", QUIX]
        subprocess.run(install, check=True, timeout=900)
    return python


def as_json(event: TransactionEvent) -> OutRecord:
    value = {
        "event_id": event.event_id,
        "ts_ms": int(event.occurred_at.timestamp() * 1000),
        "customer_id": event.user_id,
        "terminal_id": event.terminal_id,
        "amount_cents": event.amount_cents,
    }
    return OutRecord("", event.user_id.encode(), json.dumps(value).encode())


async def _create(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=TOPIC_CONFIGS) for n in names]
        )
    finally:
        await admin.close()


async def _decisions(
    bootstrap: str, topic: str, wanted: set[str], result: QuixResult, started: float
) -> None:
    """Read decisions until every wanted event has one (its first counts)."""
    seen: set[str] = set()
    records = read_topics(bootstrap, [topic], True, IDLE_TIMEOUT_S)
    async for record in records:
        decision = json.loads(record.value)
        event_id = decision["event_id"]
        if event_id not in wanted or event_id in seen:
            continue
        seen.add(event_id)
        result.latencies_ms.append(int(time.time() * 1000 - decision["published_ms"]))
        if len(seen) == len(wanted):
            await records.aclose()
            break
    result.decided, result.elapsed_s = len(seen), time.monotonic() - started


async def _run(
    bootstrap: str, names: tuple[str, str], records: list[OutRecord], rate: float | None
) -> QuixResult:
    """Publish ``records`` to the app's input (paced at ``rate``) and wait for their decisions."""
    source, sink = names
    result = QuixResult()
    wanted = {json.loads(r.value)["event_id"] for r in records}
    started = time.monotonic()
    reading = asyncio.create_task(_decisions(bootstrap, sink, wanted, result, started))
    await publish(bootstrap, [OutRecord(source, r.key, r.value) for r in records], rate=rate)
    await reading
    return result


async def _with_app(
    python: Path,
    bootstrap: str,
    partitions: int,
    workdir: Path,
    records: list[OutRecord],
    rate: float | None,
) -> QuixResult:
    """One run on a fresh app and topics: the app started and warmed up with one record of
    its own (group joined, state opened), then ``records``; the app stopped."""
    run = f"quix-{uuid.uuid4().hex[:8]}"
    names = (run, f"{run}-out")
    await _create(bootstrap, list(names), partitions)
    env = {
        **os.environ,
        "QUIX_BOOTSTRAP": bootstrap,
        "QUIX_INPUT": names[0],
        "QUIX_OUTPUT": names[1],
        "QUIX_GROUP": run,
        "QUIX_STATE_DIR": str(workdir / run),
    }
    with (workdir / f"{run}.log").open("wb") as log:
        app = subprocess.Popen([str(python), str(APP)], env=env, stdout=log, stderr=log)
    try:
        first = json.loads(records[0].value)
        warm = OutRecord("", records[0].key, json.dumps({**first, "event_id": "warm"}).encode())
        ready = await asyncio.wait_for(_run(bootstrap, names, [warm], None), READY_TIMEOUT_S)
        if not ready.decided:
            tail = (workdir / f"{run}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the Quix app decided nothing; the end of its log:\n{tail}")
        return await _run(bootstrap, names, records, rate)
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(timeout=30)


async def measure(transactions: int, rate: float) -> dict[str, object]:
    """A burst and a paced run of the demo's handbook transactions, each on a fresh app."""
    settings = load_settings()
    _, events, _ = demo_events(settings, transactions, 0, datetime.now(UTC))
    records = [as_json(e) for e in events]
    paced_count = max(1, int(rate * 10))
    python = quix_python()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        workdir, bootstrap = Path(tmp), broker.bootstrap_servers
        partitions = settings.partitions  # the worker's, as in the pipeline benchmark
        burst = await _with_app(python, bootstrap, partitions, workdir, records, None)
        paced = await _with_app(python, bootstrap, partitions, workdir, records[:paced_count], rate)
    return {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "partitions": settings.partitions,
        "quix": QUIX,
        "runs": [
            _row("burst", burst, len(records)),
            _row(f"paced {rate:g}/s", paced, paced_count),
        ],
    }


def _row(label: str, result: QuixResult, sent: int) -> dict[str, object]:
    return {
        "run": label,
        "events": result.decided,
        "missing": sent - result.decided,
        "events_per_s": round(result.events_per_s),
        "p50_ms": percentile(result.latencies_ms, 0.50),
        "p99_ms": percentile(result.latencies_ms, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500, help="pace of the latency run")
    args = parser.parse_args()
    interrupt_on_sigterm()
    started_load = os.getloadavg()[0]
    report = asyncio.run(measure(args.transactions, float(args.rate)))
    print(json.dumps(report, indent=2))
    print(f"recorded in {record_result('quix', report, started_load)}", file=sys.stderr)
    runs = report["runs"]
    assert isinstance(runs, list)
    return 0 if all(run["missing"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
