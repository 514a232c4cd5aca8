"""``atalaia demo``: embedded broker + worker, a built-in sample, a summary, clean shutdown."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from atalaia.admin_cli import API_KEY_ENV
from atalaia.analytics import run_query
from atalaia.audit import read_log, verify_log
from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.learning import compare_shadow, print_comparison
from atalaia.measure import percentile
from atalaia.progress import Progress
from atalaia.publish import OutRecord, publish
from atalaia.reports import daily_sections, render_markdown
from atalaia.sample import (
    generated_gifts,
    handbook_frauds,
    interleave,
    invalid_samples,
    read_handbook,
    synthetic_transactions_until,
)
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess, interrupt_on_sigterm
from config.auth import key_digest, new_key
from config.rules import default_challenger_path
from config.settings import Settings
from engine.admission import subject_of
from engine.decisions import DecisionLedger, Seen
from engine.learning import event_label
from engine.scenarios import DEFAULT_SEED, generate, listed_entries, render_table, scenario_report
from schemas.codec import WireCodec
from schemas.models import (
    DeadLetter,
    Decision,
    EventKind,
    GiftEvent,
    GiftEventType,
    InputEvent,
    ModelSnapshot,
    ShadowDecision,
    TransactionEvent,
    Verdict,
)
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics

WORKER_READY_TIMEOUT_S = 120.0
LABEL_DELAY = timedelta(days=7)
"""The handbook's labels are known a week after each transaction."""
SINK_TIMEOUT_S = 180.0
AUDIT_TIMEOUT_S = 180.0
DEMO_AUDIT_BATCH_S = 3
"""The demo's Merkle batches are due after 3 s (an hour by default), so it can show every
decision sealed within seconds of the last one."""
IDLE_TIMEOUT_S = 30.0


class DemoError(Exception):
    """The demo could not complete; one line for the operator."""


@dataclass
class DemoResult:
    transaction_source: str
    rate: float | None = None
    sent: int = 0
    valid: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[int] = field(default_factory=list)
    duplicates: int = 0
    conflicts: int = 0
    worker_ready_s: float = 0.0
    daily_report: str = ""
    elapsed_s: float = 0.0
    model_versions: Counter[str] = field(default_factory=Counter)
    shadow: str = ""
    audit: str = ""
    audit_problems: int = 0
    scenario_labels: list[tuple[str, str]] = field(default_factory=list)
    """(event id, behaviour or group) of the labelled scenarios replayed, if any."""
    verdict_of: dict[str, Verdict] = field(default_factory=dict)
    """Each decided event's first verdict."""

    @property
    def decided(self) -> int:
        return sum(self.verdicts.values())

    @property
    def events_per_s(self) -> float:
        return self.decided / self.elapsed_s if self.elapsed_s else 0.0

    def latency_percentile(self, q: float) -> int:
        return percentile(self.latencies_ms, q)


def local_settings(
    settings: Settings, bootstrap_servers: str, workdir: Path, name: str
) -> Settings:
    """A throw-away deployment on the embedded broker (demo, benchmarks): its profile is
    ``tansu``, or ``tansu-test`` when the settings ask for it (the test suite)."""
    return settings.model_copy(
        update={
            "profile": "tansu-test" if settings.profile == "tansu-test" else "tansu",
            "bootstrap_servers": bootstrap_servers,
            "topic_prefix": name,
            "app_id": f"atalaia-{name}",
            "data_dir": workdir / "data",
        }
    )


def event_record(codec: WireCodec, topics: Topics, event: InputEvent) -> OutRecord:
    """Transactions go as Avro, gifts as JSON: the demo exercises both input formats."""
    value = (
        codec.encode(event)
        if isinstance(event, TransactionEvent)
        else event.model_dump_json().encode()
    )
    return OutRecord(topics.input_topic_for(type(event)), subject_of(event).key.encode(), value)


async def await_worker(bootstrap: str, codec: WireCodec, topics: Topics, started: float) -> float:
    """Send one warm-up event and wait for its decision: the worker has joined its group."""
    warmup = GiftEvent(
        event_id=f"warmup-{int(started)}",
        occurred_at=datetime.now(UTC),
        event_type=GiftEventType.GIFT_PAID,
        gift_id="warmup",
        giver_user_id="warmup",
        amount_cents=100,
    )
    await publish(bootstrap, [event_record(codec, topics, warmup)])
    records = read_topics(bootstrap, [topics.decisions], True, WORKER_READY_TIMEOUT_S)
    async with aclosing(records):
        async for record in records:
            if codec.decode(record.value, (Decision,)).event_id == warmup.event_id:
                return time.monotonic() - started
    raise DemoError(f"the worker produced no decision within {WORKER_READY_TIMEOUT_S:.0f}s")


async def _collect(
    bootstrap: str,
    codec: WireCodec,
    topics: Topics,
    expected: set[str],
    invalid: int,
    result: DemoResult,
    replay_started: float,
) -> None:
    ledger = DecisionLedger()
    last_seen = replay_started
    records = read_topics(bootstrap, [topics.decisions, topics.dead_letters], True, IDLE_TIMEOUT_S)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.dead_letters:
                letter = codec.decode(record.value, (DeadLetter,))
                result.dead_lettered[letter.error_class] += 1
            else:
                decision = codec.decode(record.value, (Decision,))
                if decision.event_id not in expected:
                    continue
                if ledger.observe(decision) is Seen.FIRST:
                    last_seen = time.monotonic()
                    result.verdicts[(decision.event_kind.value, decision.decision.value)] += 1
                    result.verdict_of[decision.event_id] = decision.decision
                    if decision.model_version:
                        result.model_versions[decision.model_version.rsplit(".", 1)[0]] += 1
                    result.reasons.update(r.code for r in decision.reasons)
                    result.latencies_ms.append(decision.latency_ms)
            if len(ledger) == len(expected) and result.dead_lettered.total() >= invalid:
                break
    result.duplicates, result.conflicts = ledger.duplicates, ledger.conflicts
    result.elapsed_s = last_seen - replay_started


def demo_events(
    settings: Settings, transactions: int, gifts: int, now: datetime
) -> tuple[str, list[TransactionEvent], list[GiftEvent]]:
    """The demo's traffic: where its transactions come from, the handbook's first
    ``transactions`` rows (synthetic ones without the file), and ``gifts`` GiftPix events
    ending before ``now``."""
    if settings.handbook_path.is_file():
        tx_events = read_handbook(settings.handbook_path, transactions)
        source = f"handbook ({settings.handbook_path.name})"
    else:
        tx_events = synthetic_transactions_until(transactions, now.replace(microsecond=0))
        source = "synthetic (handbook file not found)"
    # Gifts span about 45 s each on average: start far enough back to end before now.
    gift_events = generated_gifts(gifts, now.replace(microsecond=0) - timedelta(seconds=60 * gifts))
    return source, tx_events, gift_events


async def run_demo(
    settings: Settings,
    transactions: int,
    gifts: int,
    rate: float | None = None,
    out: TextIO = sys.stderr,
    analytics: bool = False,
    learning: bool = False,
    learner_only: bool = False,
    audit: bool = False,
    models: Sequence[ModelSnapshot] = (),
    scenarios: int = 0,
) -> DemoResult:
    """``learning``: also run the learner with the shipped challenger in shadow, publish the
    handbook's labels (known 7 days after each transaction) and compare the two;
    ``learner_only``: run the learner, no challenger (the benchmark's "model on");
    ``audit``: also run the auditor (batches due after a few seconds) and verify its log;
    ``models``: snapshots on the models topic before the worker starts (it scores with
    them); ``scenarios``: also replay the labelled fraud scenarios of that many users (the
    listed fraudsters' entries on the lists topic first) and report each behaviour."""
    codec = WireCodec()
    now = datetime.now(UTC)
    source, tx_events, gift_events = demo_events(settings, transactions, gifts, now)
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    stream = generate(DEFAULT_SEED, scenarios, hash_key) if scenarios else []
    bad = invalid_samples(now)
    result = DemoResult(transaction_source=source, rate=rate)

    with scratch_directory("atalaia-demo-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            demo = local_settings(settings, broker.bootstrap_servers, workdir, "demo")
            topics = Topics(demo.topic_prefix)
            await ensure_topics(demo)
            if models:
                snapshots = [
                    OutRecord(topics.models, m.name.encode(), codec.encode(m)) for m in models
                ]
                await publish(demo.bootstrap_servers, snapshots)
            if stream:
                at = stream[0].event.occurred_at
                listed = listed_entries(hash_key, scenarios, at)
                entries = [
                    OutRecord(topics.lists, e.entry_id.encode(), codec.encode(e)) for e in listed
                ]
                await publish(demo.bootstrap_servers, entries)
            learner = None
            if learning:
                demo = demo.model_copy(update={"challenger_rules_path": default_challenger_path()})
            if learning or learner_only:
                print("starting the learner...", file=out)
                learner = WorkerProcess(demo, workdir / "learner.log", "learner").start()
                await await_first_model(demo.bootstrap_servers, topics)
            print(f"broker on {broker.bootstrap_servers}; starting worker...", file=out)
            worker = WorkerProcess(demo, workdir / "worker.log").start()
            auditor = None
            if audit:
                demo = demo.model_copy(update={"audit_batch_seconds": DEMO_AUDIT_BATCH_S})
                auditor_settings = demo.model_copy(update={"data_dir": workdir / "auditor"})
                auditor = WorkerProcess(auditor_settings, workdir / "auditor.log", "auditor")
                auditor.start()
            sink = None
            if analytics:
                demo = demo.model_copy(
                    update={
                        "sink_port": free_port(),
                        "analytics_target": str(workdir / "ch"),
                        "api_keys": SecretStr(_demo_query_key()),
                    }
                )
                sink_settings = demo.model_copy(update={"data_dir": workdir / "sink"})
                sink = WorkerProcess(sink_settings, workdir / "sink.log", "sink").start()
            try:
                started = time.monotonic()
                result.worker_ready_s = await await_worker(
                    demo.bootstrap_servers, codec, topics, started
                )
                print(f"worker ready after {result.worker_ready_s:.1f}s", file=out)
                records = [
                    event_record(codec, topics, e) for e in interleave(tx_events, gift_events)
                ]
                kind_topic = {
                    k.value: t
                    for t, k in (
                        (topics.transactions, EventKind.TRANSACTION),
                        (topics.logins, EventKind.LOGIN),
                        (topics.gifts, EventKind.GIFT),
                    )
                }
                records += [event_record(codec, topics, item.event) for item in stream]
                records += [OutRecord(kind_topic[b.topic_kind], None, b.value) for b in bad]
                expected = {e.event_id for e in tx_events} | {e.event_id for e in gift_events}
                expected |= {item.event.event_id for item in stream}
                result.scenario_labels = [(i.event.event_id, i.label) for i in stream]
                result.valid = len(expected)
                replay_started = time.monotonic()
                result.sent = await publish(
                    demo.bootstrap_servers, records, Progress(len(records), "replaying", out), rate
                )
                await _collect(
                    demo.bootstrap_servers,
                    codec,
                    topics,
                    expected,
                    len(bad),
                    result,
                    replay_started,
                )
                if not worker.alive:
                    raise DemoError(f"the worker died; see {workdir / 'worker.log'}")
                if learning:
                    frauds = (
                        handbook_frauds(settings.handbook_path, transactions)
                        if settings.handbook_path.is_file()
                        else set()
                    )
                    result.shadow = await _shadow_summary(
                        demo.bootstrap_servers, codec, topics, tx_events, frauds, expected
                    )
                if auditor is not None:
                    print("waiting for the auditor to seal every decision...", file=out)
                    await _audit_summary(demo, auditor, workdir / "auditor.log", result)
                if sink is not None:
                    print("waiting for the analytics sink...", file=out)
                    await _sink_serving(demo, sink, workdir / "sink.log")
                    result.daily_report = await asyncio.to_thread(
                        busiest_day_report, demo, result.decided
                    )
            finally:
                if sink is not None:
                    sink.stop()
                if auditor is not None:
                    auditor.stop()
                worker.stop()
                if learner is not None:
                    learner.stop()
    return result


async def _audit_summary(
    settings: Settings, auditor: WorkerProcess, log_file: Path, result: DemoResult
) -> None:
    """Once the audit log holds every decision (and the warm-up's), each in a Merkle batch:
    what ``atalaia audit verify`` says of it."""
    wanted = result.decided + 1
    deadline = time.monotonic() + AUDIT_TIMEOUT_S
    while True:
        log = await read_log(settings)
        chained = log.record_count
        sealed = sum(batch.count for batch in log.batches)
        if chained >= wanted and sealed >= chained:
            break
        if not auditor.alive:
            raise DemoError(f"the auditor died; see {log_file}")
        if time.monotonic() > deadline:
            raise DemoError(
                f"the audit log held {chained} of {wanted} records, {sealed} sealed, "
                f"after {AUDIT_TIMEOUT_S:.0f}s"
            )
        await asyncio.sleep(1.0)
    problems = verify_log(log, anchors=False)
    result.audit_problems = len(problems)
    verdict = "verified OK" if not problems else f"{len(problems)} problems, first: {problems[0]}"
    result.audit = (
        f"{chained} records in {len(log.chains)} chains, {len(log.batches)} Merkle batches, "
        f"every record sealed: {verdict}"
    )


async def _sink_serving(settings: Settings, sink: WorkerProcess, log: Path) -> None:
    """Wait until the sink answers queries: until then it may hold the store without serving
    it, and a query would find the store locked."""
    deadline = time.monotonic() + SINK_TIMEOUT_S
    while not await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.sink_port, 1.0):
        if not sink.alive:
            raise DemoError(f"the analytics sink died; see {log}")
        if time.monotonic() > deadline:
            raise DemoError(f"the analytics sink did not serve queries in {SINK_TIMEOUT_S:.0f}s")


async def await_first_model(bootstrap: str, topics: Topics) -> None:
    """Wait until the learner has published its first model (workers then start with it)."""
    records = read_topics(bootstrap, [topics.models], True, WORKER_READY_TIMEOUT_S)
    async with aclosing(records):
        async for _ in records:
            return
    raise DemoError(f"the learner published no model within {WORKER_READY_TIMEOUT_S:.0f}s")


async def _shadow_summary(
    bootstrap: str,
    codec: WireCodec,
    topics: Topics,
    transactions: list[TransactionEvent],
    frauds: set[str],
    wanted: set[str],
) -> str:
    """Publish the transactions' labels (known 7 days after each), wait for every shadow
    decision, and compare the challenger with the champion."""
    labels = [
        event_label(e, e.event_id in frauds, e.occurred_at + LABEL_DELAY, "handbook")
        for e in transactions
    ]
    await publish(
        bootstrap,
        [
            OutRecord(topics.labels, label.subject_id.encode(), codec.encode(label))
            for label in labels
        ],
    )
    shadows: dict[str, ShadowDecision] = {}  # by event id: the warm-up event's too
    records = read_topics(bootstrap, [topics.shadow_decisions], True, IDLE_TIMEOUT_S)
    async with aclosing(records):
        async for record in records:
            shadow = codec.decode(record.value, (ShadowDecision,))
            shadows[shadow.event_id] = shadow
            if wanted <= shadows.keys():
                break
    buffer = io.StringIO()
    found = [shadows[event_id] for event_id in wanted if event_id in shadows]
    print_comparison(compare_shadow(found, labels), buffer)
    return buffer.getvalue()


def render_summary(result: DemoResult) -> str:
    lines = [
        "",
        "Atalaia demo summary",
        "====================",
        f"transactions from     {result.transaction_source}",
        f"events sent           {result.sent} ({result.valid} valid, "
        f"{result.dead_lettered.total()} invalid)",
        f"decisions             {result.decided} unique"
        f" (+{result.duplicates} re-deliveries folded, {result.conflicts} conflicts)",
        f"dead-lettered         {result.dead_lettered.total()}  "
        + json.dumps(dict(sorted(result.dead_lettered.items()))),
        "",
        f"{'kind':<13}{'ALLOW':>8}{'REVIEW':>8}{'BLOCK':>8}",
    ]
    for kind in EventKind:
        row = [result.verdicts[(kind.value, v)] for v in ("ALLOW", "REVIEW", "BLOCK")]
        if any(row):
            lines.append(f"{kind.value:<13}{row[0]:>8}{row[1]:>8}{row[2]:>8}")
    lines += ["", "top reasons"]
    lines += [f"  {code:<26}{count:>6}" for code, count in result.reasons.most_common(5)]
    if not result.reasons:
        lines.append("  (none fired)")
    if result.model_versions:
        lines += ["", "online models"]
        lines += [
            f"  {family:<26}{count:>6} decisions scored"
            for family, count in result.model_versions.items()
        ]
    if result.scenario_labels:
        report = scenario_report(result.scenario_labels, result.verdict_of)
        lines += ["", "labelled fraud scenarios (atalaia eval scenarios)", render_table(report)]
    if result.shadow:
        lines += ["", "challenger in shadow (atalaia shadow)", result.shadow.rstrip()]
    if result.audit:
        lines += ["", f"audit log             {result.audit}"]
    lines += [
        "",
        f"worker ready after    {result.worker_ready_s:.1f} s (group join)",
        "replay pace           "
        + (
            f"{result.rate:,.0f} events/s"
            if result.rate
            else "as fast as possible (burst: latency includes queueing)"
        ),
        f"throughput            {result.events_per_s:,.0f} events/s "
        f"({result.decided} decisions in {result.elapsed_s:.2f} s, replay start to last)",
        f"latency (broker ts -> decision)  p50 {result.latency_percentile(0.50)} ms, "
        f"p99 {result.latency_percentile(0.99)} ms",
    ]
    return "\n".join(lines)


def _demo_query_key() -> str:
    """A key for this demo's own queries to its sink: made now, kept in this process's
    environment (where the reports read it), its digest the sink's only key."""
    key = new_key()
    os.environ[API_KEY_ENV] = key
    return f"demo:analyst:{key_digest(key)}"


def busiest_day_report(settings: Settings, decided: int) -> str:
    """Once the sink holds every decision: the daily report of the day with most of them."""
    deadline = time.monotonic() + SINK_TIMEOUT_S
    stored = 0
    while time.monotonic() < deadline:
        _, rows = run_query(settings, "SELECT count() FROM decisions FINAL")
        stored = int(rows[0][0])
        if stored >= decided:
            break
        time.sleep(0.5)
    else:
        raise DemoError(f"the sink stored {stored} of {decided} decisions in {SINK_TIMEOUT_S:.0f}s")
    _, rows = run_query(
        settings,
        "SELECT toString(toDate(event_occurred_at)) AS day, count() AS n FROM decisions FINAL "
        "GROUP BY day ORDER BY n DESC LIMIT 1",
    )
    day = str(rows[0][0])
    sections = daily_sections(partial(run_query, settings), day)
    return render_markdown(f"Atalaia daily report, {day}", sections)


def demo_main(
    settings: Settings,
    transactions: int,
    gifts: int,
    rate: float | None,
    analytics: bool = False,
    learning: bool = False,
    audit: bool = False,
    scenarios: int = 0,
) -> int:
    interrupt_on_sigterm()
    result = asyncio.run(
        run_demo(
            settings,
            transactions,
            gifts,
            rate,
            analytics=analytics,
            learning=learning,
            audit=audit,
            scenarios=scenarios,
        )
    )
    print(render_summary(result))
    if result.daily_report:
        print("\n" + result.daily_report)
    missing = result.valid - result.decided
    if missing or result.conflicts:
        print(
            f"atalaia: demo incomplete: {missing} events without decision, "
            f"{result.conflicts} conflicting decisions",
            file=sys.stderr,
        )
        return 1
    if result.audit_problems:
        print(f"atalaia: the audit log did not verify: {result.audit}", file=sys.stderr)
        return 1
    return 0
