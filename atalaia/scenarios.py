"""``atalaia eval scenarios``: recall and false positives per fraud behaviour on the labelled
synthetic stream of ``engine.scenarios``.

By default the stream goes through the real pipeline (an embedded broker and one worker, as
``atalaia eval handbook`` runs it): what is measured is what production would decide.
``--replay`` decides the same stream in this process with ``engine.replay`` (the worker's
scoring code, no broker), in seconds, to calibrate rules.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any, TextIO

from atalaia.broker import EmbeddedBroker
from atalaia.demo import await_worker, event_record, local_settings
from atalaia.evaluate import EvalError
from atalaia.progress import Progress
from atalaia.publish import OutRecord, publish
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from engine.replay import Replay
from engine.scenarios import (
    Labelled,
    ScenarioReport,
    generate,
    listed_entries,
    render_table,
    scenario_report,
)
from schemas.codec import WireCodec
from schemas.models import Decision, ListEntry, Verdict
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics
from streams.views import default_list_view

IDLE_S = 60.0
"""No new decision for this long ends the read: the worker is stuck or dead."""


def decide_in_process(
    settings: Settings, stream: list[Labelled], listed: list[ListEntry]
) -> dict[str, Verdict]:
    """The worker's scoring code in this process, the shipped lists with ``listed`` on them,
    no model snapshot (a worker without a learner has none either)."""
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    rules = load_rules(settings.rules_path)
    lists = default_list_view(hash_key)
    for entry in listed:
        lists.apply(entry)
    replay = Replay(rules, hash_key, lists, learn=False)
    return {
        r.event.event_id: r.outcome.assessment.verdict
        for r in replay.run((item.event for item in stream), [])
    }


async def decide_through_pipeline(
    run: Settings,
    workdir: Path,
    stream: list[Labelled],
    listed: list[ListEntry],
    out: TextIO,
) -> dict[str, Verdict]:
    """Publish the list entries, then start one worker, publish the stream keyed by subject
    to the broker of ``run`` (its topics created), and read back each event's first
    decision."""
    codec, topics = WireCodec(), Topics(run.topic_prefix)
    entries = [OutRecord(topics.lists, e.entry_id.encode(), codec.encode(e)) for e in listed]
    await publish(run.bootstrap_servers, entries)
    worker = WorkerProcess(run, workdir / "worker.log").start()
    verdicts: dict[str, Verdict] = {}
    wanted = {item.event.event_id for item in stream}
    try:
        await await_worker(run.bootstrap_servers, codec, topics, time.monotonic())
        records = [event_record(codec, topics, item.event) for item in stream]
        sending = asyncio.create_task(
            publish(run.bootstrap_servers, records, Progress(len(records), "publishing", out))
        )
        decisions = read_topics(run.bootstrap_servers, [topics.decisions], True, IDLE_S)
        async with aclosing(decisions):
            async for record in decisions:
                decision = codec.decode(record.value, (Decision,))
                if decision.event_id in wanted:
                    verdicts.setdefault(decision.event_id, decision.decision)
                    if len(verdicts) == len(wanted):
                        break
        await sending
    finally:
        worker.stop()
    if len(verdicts) < len(wanted):
        log = workdir / "worker.log"
        raise EvalError(f"only {len(verdicts):,} of {len(wanted):,} events were decided; see {log}")
    return verdicts


async def _pipeline(
    settings: Settings, stream: list[Labelled], listed: list[ListEntry], out: TextIO
) -> dict[str, Verdict]:
    with scratch_directory("atalaia-scenarios-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            run = local_settings(settings, broker.bootstrap_servers, workdir, "scenarios")
            await ensure_topics(run)
            return await decide_through_pipeline(run, workdir, stream, listed, out)


def report_json(report: ScenarioReport, extra: dict[str, Any]) -> str:
    rows = [
        {
            "group": r.group,
            "kind": r.kind,
            "events": r.events,
            "caught": r.caught,
            "reviewed_by_policy": r.reviewed,
            "rate": r.rate,
        }
        for r in report.rows
    ]
    overall = {"recall": report.recall, "fpr": report.fpr, "precision": report.precision}
    return json.dumps({**extra, "rows": rows, **overall, "undecided": report.undecided}, indent=2)


def scenarios_main(
    settings: Settings, seed: int, users: int, replay: bool, as_json: bool, out: TextIO
) -> int:
    """Generate, decide (pipeline or in process), print the table or JSON."""
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    stream = generate(seed, users, hash_key)
    listed = listed_entries(hash_key, users, stream[0].event.occurred_at)
    frauds = sum(item.is_fraud for item in stream)
    progress = out if not as_json else None
    if progress:
        print(f"{len(stream):,} events ({frauds:,} fraud), seed {seed}, {users} users", file=out)
    started = time.monotonic()
    if replay:
        verdicts = decide_in_process(settings, stream, listed)
    else:
        verdicts = asyncio.run(_pipeline(settings, stream, listed, progress or io.StringIO()))
    elapsed = time.monotonic() - started
    report = scenario_report(((i.event.event_id, i.label) for i in stream), verdicts)
    mode = "in process (replay)" if replay else "through broker and worker"
    if as_json:
        extra = {"seed": seed, "users": users, "events": len(stream), "decided": len(verdicts)}
        print(report_json(report, extra | {"mode": mode, "seconds": round(elapsed, 1)}), file=out)
    else:
        print(f"decided {len(verdicts):,} events {mode} in {elapsed:.0f} s\n", file=out)
        print(render_table(report), file=out)
    return 0
