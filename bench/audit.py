"""Audit benchmark: how fast the auditor chains decisions, next to how fast they are made,
and what chaining and batching add to each record's size.

Starts the embedded broker, one worker and one auditor on 127.0.0.1, replays a burst of
synthetic transactions, and reads the decision and audit topics until every event has both.
Bounded: fixed counts, an idle timeout, every process stopped at the end.

    .venv/bin/python -m bench.audit [--transactions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from atalaia.broker import EmbeddedBroker
from atalaia.demo import await_worker, local_settings
from atalaia.publish import OutRecord, publish
from atalaia.sample import synthetic_transactions
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess, interrupt_on_sigterm
from bench.results import record_result
from config.settings import load_settings
from engine.admission import subject_of
from schemas.codec import WireCodec
from schemas.models import AuditBatch, AuditRecord, Decision
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics

IDLE_TIMEOUT_S = 60.0


async def run(transactions: int) -> dict[str, object]:
    codec = WireCodec()
    # Synthetic transactions are 30 s apart: start early enough to end before now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30 * transactions + 60)
    events = synthetic_transactions(transactions, start)
    expected = {e.event_id for e in events}
    with scratch_directory("atalaia-bench-audit-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            settings = local_settings(load_settings(), broker.bootstrap_servers, workdir, "bench")
            topics = Topics(settings.topic_prefix)
            await ensure_topics(settings)
            worker = WorkerProcess(settings, workdir / "worker.log").start()
            auditor_settings = settings.model_copy(update={"data_dir": workdir / "auditor"})
            auditor = WorkerProcess(auditor_settings, workdir / "auditor.log", "auditor").start()
            try:
                await await_worker(settings.bootstrap_servers, codec, topics, time.monotonic())
                records = [
                    OutRecord(topics.transactions, subject_of(e).key.encode(), codec.encode(e))
                    for e in events
                ]
                started = time.monotonic()
                await publish(settings.bootstrap_servers, records)
                return await _measure(settings.bootstrap_servers, topics, codec, expected, started)
            finally:
                auditor.stop()
                worker.stop()


async def _measure(
    bootstrap: str, topics: Topics, codec: WireCodec, expected: set[str], started: float
) -> dict[str, object]:
    decided: set[str] = set()
    audited: set[str] = set()
    last_decision = last_audit = started
    chained_bytes = unchained_bytes = batch_bytes = 0
    names = [topics.decisions, topics.audit, topics.audit_batches]
    records = read_topics(bootstrap, names, True, IDLE_TIMEOUT_S)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.decisions:
                decided.add(codec.decode(record.value, (Decision,)).event_id)
                last_decision = time.monotonic()
            elif record.topic == topics.audit:
                entry = codec.decode(record.value, (AuditRecord,))
                audited.add(entry.audit_id.removeprefix("decision-"))
                last_audit = time.monotonic()
                chained_bytes += len(record.value)
                bare = entry.model_copy(
                    update={"chain": None, "sequence": None, "previous_hash": None}
                )
                unchained_bytes += len(codec.encode(bare))
            else:
                codec.decode(record.value, (AuditBatch,))
                batch_bytes += len(record.value)
            if expected <= decided and expected <= audited:
                break
    count = len(expected & audited)
    return {
        "events": len(expected),
        "decisions_per_s": round(len(expected & decided) / (last_decision - started)),
        "audit_records_per_s": round(count / (last_audit - started)),
        "missing_decisions": len(expected - decided),
        "missing_audit_records": len(expected - audited),
        "audit_record_bytes_mean": round(chained_bytes / max(1, len(audited))),
        "chain_fields_bytes_mean": round((chained_bytes - unchained_bytes) / max(1, len(audited))),
        "batch_bytes_per_record": round(batch_bytes / max(1, len(audited)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    args = parser.parse_args()
    interrupt_on_sigterm()
    report = asyncio.run(run(args.transactions))
    json.dump(report, sys.stdout, indent=2)
    print()
    print(f"recorded in {record_result('audit', report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
