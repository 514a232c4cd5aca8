"""Analytics sink benchmark: rows/s from the topics into the embedded ClickHouse (chDB).

Starts the embedded broker, one worker and one sink on 127.0.0.1, replays a burst of
synthetic transactions, and polls the store until every decision and event row is in.
Bounded: fixed counts and a deadline, every process stopped at the end.

    .venv/bin/python -m bench.analytics [--transactions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from atalaia.analytics import run_query
from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.demo import await_worker, local_settings
from atalaia.publish import OutRecord, publish
from atalaia.sample import synthetic_transactions
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess, interrupt_on_sigterm
from bench.results import record_result
from config.settings import Settings, load_settings
from engine.admission import subject_of
from schemas.codec import WireCodec
from streams.admin import ensure_topics
from streams.topics import Topics

DEADLINE_S = 600.0


def _rows(settings: Settings) -> int:
    query = "SELECT (SELECT count() FROM decisions) + (SELECT count() FROM events)"
    _, rows = run_query(settings, query)
    return int(rows[0][0])


def run(transactions: int) -> dict[str, object]:
    codec = WireCodec()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30 * transactions + 60)
    events = synthetic_transactions(transactions, start)
    with scratch_directory("atalaia-bench-sink-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            base = local_settings(load_settings(), broker.bootstrap_servers, workdir, "bench")
            settings = base.model_copy(
                update={"sink_port": free_port(), "analytics_target": str(workdir / "ch")}
            )
            topics = Topics(settings.topic_prefix)
            asyncio.run(ensure_topics(settings))
            worker = WorkerProcess(settings, workdir / "worker.log").start()
            sink_settings = settings.model_copy(update={"data_dir": workdir / "sink"})
            sink = WorkerProcess(sink_settings, workdir / "sink.log", "sink").start()
            try:
                asyncio.run(
                    await_worker(settings.bootstrap_servers, codec, topics, time.monotonic())
                )
                if not wait_for_port("127.0.0.1", settings.sink_port, 60):
                    raise RuntimeError("the sink did not start")
                time.sleep(2)  # the warm-up event's rows land first
                baseline = _rows(settings)
                records = [
                    OutRecord(topics.transactions, subject_of(e).key.encode(), codec.encode(e))
                    for e in events
                ]
                started = time.monotonic()
                asyncio.run(publish(settings.bootstrap_servers, records))
                expected = baseline + 2 * transactions
                stored = baseline
                while stored < expected and time.monotonic() - started < DEADLINE_S:
                    time.sleep(0.5)
                    stored = _rows(settings)
                elapsed = time.monotonic() - started
            finally:
                sink.stop()
                worker.stop()
    return {
        "events": transactions,
        "rows_stored": stored - baseline,
        "rows_expected": 2 * transactions,
        "seconds": round(elapsed, 1),
        "rows_per_s_end_to_end": round((stored - baseline) / elapsed),
    }


def store_only(rows: int, batch: int) -> dict[str, object]:
    """The store's own pace: decision rows inserted in sink-sized batches, no broker."""
    from config.rules import load_rules
    from engine.decide import decide_event
    from engine.decisions import build_decision
    from engine.velocity import VelocityState
    from sinks.clickhouse import AnalyticsStore, connect, decision_row

    rules = load_rules()
    now = datetime.now(UTC)
    event = synthetic_transactions(1, now - timedelta(minutes=1))[0]
    outcome = decide_event(VelocityState(), event, rules)
    template = build_decision(event, outcome.assessment, rules.version, now, now)
    with scratch_directory("atalaia-bench-store-") as tmp:
        store = AnalyticsStore(connect(str(Path(tmp) / "ch")))
        store.ensure_schema()
        started = time.monotonic()
        for first in range(0, rows, batch):
            chunk = [
                decision_row(template.model_copy(update={"event_id": f"e{n}"}))
                for n in range(first, min(rows, first + batch))
            ]
            store.insert("decisions", chunk)
        elapsed = time.monotonic() - started
    return {"rows": rows, "batch": batch, "rows_per_s_store_only": round(rows / elapsed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    args = parser.parse_args()
    interrupt_on_sigterm()
    report = {**run(args.transactions), **store_only(100_000, 1_000)}
    json.dump(report, sys.stdout, indent=2)
    print()
    print(f"recorded in {record_result('analytics', report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
