"""``atalaia eval handbook``: detection quality on the handbook's labelled card transactions.

Every transaction from ``--start`` on is scored in time order; its label becomes known
``--label-delay-days`` later (7, as the handbook assumes) and only then can the model learn
it. The transactions of the test period (``--from``..``--to``) are measured as the handbook
measures them: AUC ROC, average precision and card precision@100, leaving out the
transactions of cards already known to be compromised (``engine.metrics.
handbook_test_indexes``). Learning never stops: a test-period label teaches the model only
for transactions after it became known, as it would in production.

``--offline`` runs the scoring code in this process (``engine.replay``); without it the
events and labels go through the real pipeline: an embedded broker, a worker and the learner.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import heapq
import time
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from atalaia.broker import EmbeddedBroker
from atalaia.demo import await_worker, local_settings
from atalaia.publish import OutRecord, publish
from atalaia.sample import handbook_transaction
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess
from config.rules import RuleSet, load_rules
from config.settings import Settings
from engine.decide import Outcome
from engine.learning import event_label
from engine.lists import ListView
from engine.metrics import (
    auc_roc,
    average_precision,
    card_precision_at_k,
    handbook_test_indexes,
)
from engine.replay import Replay
from engine.scoring import MAX_SCORE
from schemas.codec import WireCodec
from schemas.models import Decision, Label, TransactionEvent
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics
from streams.views import default_list_view

LOCAL_UTC_OFFSET_HOURS = -3
"""Handbook timestamps are read as Brasilia time (``atalaia.sample``)."""
_IDLE_S = 120.0
TRAINING_WEEK = timedelta(days=7)
"""The handbook forgets compromised cards from before its training week (7 days)."""
MODEL_REASONS = frozenset({"MODEL_FRAUD_PROBABILITY", "MODEL_ANOMALY"})

BASELINES = (
    ("logistic regression (handbook)", 0.871, 0.606, 0.291),
    ("random forest (handbook)", 0.867, 0.658, 0.287),
    ("XGBoost, model selection (handbook)", 0.869, 0.687, 0.303),
    ("balanced bagging (handbook, best)", 0.879, 0.680, 0.305),
)


class EvalError(Exception):
    """The evaluation cannot run as asked; one line for the operator."""


@dataclass(frozen=True)
class Labelled:
    """A handbook transaction with its truth."""

    event: TransactionEvent
    is_fraud: bool


def read_labelled(path: Path, start: date, end: date) -> Iterator[Labelled]:
    """Handbook rows from ``start`` to ``end`` (inclusive, by date), in file (time) order."""
    if not path.is_file():
        raise EvalError(f"handbook data not found: {path}")
    first, last = start.isoformat(), end.isoformat()
    with gzip.open(path, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            day = row["TX_DATETIME"][:10]
            if day < first:
                continue
            if day > last:
                return
            if Decimal(row["TX_AMOUNT"]) * 100 < 1:
                continue  # a zero amount breaks our contract (the pipeline dead-letters it)
            yield Labelled(handbook_transaction(row), row["TX_FRAUD"] == "1")


def label_of(item: Labelled, delay: timedelta) -> Label:
    event = item.event
    return event_label(event, item.is_fraud, event.occurred_at + delay, "handbook")


@dataclass(frozen=True)
class Scores:
    """One transaction's scores: rules only, the model probability the decision used (the
    blend of both models once a batch model is loaded), each model's own when known (in
    this process: the pipeline's decisions carry the blend only), anomaly, the decision's."""

    rules: float
    probability: float
    anomaly: float
    final: float
    online: float | None = None
    batch: float | None = None


COLUMNS = (
    ("rules only (0-100)", "rules"),
    ("online model probability", "online"),
    ("batch model probability", "batch"),
    ("model probability (what decisions use)", "probability"),
    ("anomaly score (unsupervised)", "anomaly"),
    ("decision score (rules + model)", "final"),
)
"""The report's rows: a name and the ``Scores`` field it measures."""


@dataclass
class Scored:
    """What the measures need of the test-period transactions."""

    day: list[date] = field(default_factory=list)
    card: list[str] = field(default_factory=list)
    is_fraud: list[bool] = field(default_factory=list)
    scores: list[Scores] = field(default_factory=list)

    def column(self, name: str) -> list[float] | None:
        """One score of every transaction; None when some lack it."""
        values = [getattr(s, name) for s in self.scores]
        return None if any(v is None for v in values) else values


def rules_points(reasons: list[tuple[str, int]]) -> int:
    return max(
        0, min(MAX_SCORE, sum(points for code, points in reasons if code not in MODEL_REASONS))
    )


def scores_of_decision(decision: Decision) -> Scores:
    probability = decision.model_probability or 0.0
    return Scores(
        rules_points([(r.code, r.points) for r in decision.reasons]),
        probability,
        decision.model_anomaly or 0.0,
        decision.score + probability / 2,  # the probability breaks ties between equal scores
    )


def scores_of_outcome(outcome: Outcome) -> Scores:
    model = outcome.model_score
    probability = model.probability if model else 0.0
    parts = dict(model.parts) if model and model.parts else {"online": probability}
    return Scores(
        rules_points([(r.code, r.points) for r in outcome.assessment.reasons]),
        probability,
        model.anomaly if model else 0.0,
        outcome.assessment.score + probability / 2,
        parts.get("online", 0.0),
        parts.get("batch", 0.0),
    )


def decide_offline(
    rules: RuleSet,
    hash_key: bytes,
    lists: ListView,
    items: list[Labelled],
    labels: list[Label],
    first_measured: datetime,
    out: TextIO,
) -> dict[str, Scores]:
    """Score every event in this process (``engine.replay``); the scores from
    ``first_measured`` on."""
    scores: dict[str, Scores] = {}
    replay = Replay(rules, hash_key, lists, learn=True)
    for done, replayed in enumerate(replay.run((i.event for i in items), labels), 1):
        event = replayed.event
        if done % 100_000 == 0:
            print(f"  {done:,} scored ({event.occurred_at:%Y-%m-%d})", file=out, flush=True)
        if event.occurred_at >= first_measured:
            scores[event.event_id] = scores_of_outcome(replayed.outcome)
    trainings = replay.learner.batch.trainings if replay.learner and replay.learner.batch else 0
    print(f"batch model trained {trainings} times", file=out)
    return scores


def measured_set(
    items: list[Labelled], scores: dict[str, Scores], test_from: date, delay: timedelta
) -> Scored:
    """The measured transactions, as the handbook picks them (``handbook_test_indexes``)."""
    days = [_local_day(item.event) for item in items]
    measured = handbook_test_indexes(
        days,
        [item.event.user_id for item in items],
        [item.is_fraud for item in items],
        test_from,
        test_from - delay - TRAINING_WEEK,
        delay.days,
    )
    scored = Scored()
    for i in measured:
        scored.day.append(days[i])
        scored.card.append(items[i].event.user_id)
        scored.is_fraud.append(items[i].is_fraud)
        scored.scores.append(scores[items[i].event.event_id])
    return scored


def _local_day(event: TransactionEvent) -> date:
    return (event.occurred_at + timedelta(hours=LOCAL_UTC_OFFSET_HOURS)).date()


def report(scored: Scored, out: TextIO) -> None:
    frauds = sum(scored.is_fraud)
    print(
        f"test set: {len(scored.is_fraud):,} transactions, {frauds:,} frauds, "
        f"{len(set(scored.day))} days (cards known compromised left out, as the handbook does)",
        file=out,
    )
    print("\n| score | AUC ROC | AP | CP@100 |\n|---|---|---|---|", file=out)
    for name, field_name in COLUMNS:
        values = scored.column(field_name)
        if values is None:
            continue
        auc = auc_roc(values, scored.is_fraud)
        ap = average_precision(values, scored.is_fraud)
        cp = card_precision_at_k(scored.day, scored.card, values, scored.is_fraud, 100)
        print(f"| {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} |", file=out)
    for name, auc, ap, cp in BASELINES:
        print(f"| {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} |", file=out)


async def decide_in_pipeline(
    settings: Settings,
    items: list[Labelled],
    labels: list[Label],
    first_measured: datetime,
    out: TextIO,
) -> dict[str, Scores]:
    """Publish events and labels in time order to an embedded broker, with a worker and the
    learner running, and collect the scores of the events from ``first_measured`` on."""
    codec = WireCodec()
    wanted = {i.event.event_id for i in items if i.event.occurred_at >= first_measured}
    decisions: dict[str, Scores] = {}
    with scratch_directory("atalaia-eval-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            run = local_settings(settings, broker.bootstrap_servers, workdir, "eval")
            topics = Topics(run.topic_prefix)
            await ensure_topics(run)
            worker = WorkerProcess(run, workdir / "worker.log").start()
            learner = WorkerProcess(run, workdir / "learner.log", command="learner").start()
            try:
                await await_worker(run.bootstrap_servers, codec, topics, time.monotonic())
                print(f"worker and learner up on {broker.bootstrap_servers}", file=out)
                records = _in_time_order(codec, topics, items, labels)
                sending = asyncio.create_task(publish(run.bootstrap_servers, records))
                stream = read_topics(run.bootstrap_servers, [topics.decisions], True, _IDLE_S)
                async with aclosing(stream):
                    async for record in stream:
                        decision = codec.decode(record.value, (Decision,))
                        if decision.event_id in wanted and decision.event_id not in decisions:
                            decisions[decision.event_id] = scores_of_decision(decision)
                            if len(decisions) % 50_000 == 0:
                                day = decision.event_occurred_at.date()
                                print(f"  {len(decisions):,} decided ({day})", file=out, flush=True)
                            if len(decisions) == len(wanted):
                                break
                await sending
            finally:
                learner.stop()
                worker.stop()
    if len(decisions) < len(wanted):
        raise EvalError(f"only {len(decisions):,} of {len(wanted):,} events were decided")
    return decisions


def _in_time_order(
    codec: WireCodec, topics: Topics, items: list[Labelled], labels: list[Label]
) -> Iterator[OutRecord]:
    """Each label after the events before its ``labelled_at``; keyed by user, as upstream."""
    topic = topics.transactions
    events = (
        (
            i.event.occurred_at,
            1,
            n,
            OutRecord(topic, i.event.user_id.encode(), codec.encode(i.event)),
        )
        for n, i in enumerate(items)
    )
    known = (
        (
            label.labelled_at,
            0,
            n,
            OutRecord(topics.labels, label.subject_id.encode(), codec.encode(label)),
        )
        for n, label in enumerate(labels)
    )
    for *_, record in heapq.merge(events, known, key=lambda t: t[:3]):
        yield record


def eval_main(
    settings: Settings,
    start: date,
    test_from: date,
    test_to: date,
    delay_days: int,
    offline: bool,
    out: TextIO,
) -> int:
    items = list(read_labelled(settings.handbook_path, start, test_to))
    if not any(item.event.occurred_at >= _local_midnight(test_from) for item in items):
        raise EvalError(f"no handbook transactions between {test_from} and {test_to}")
    delay = timedelta(days=delay_days)
    labels = [label_of(item, delay) for item in items]
    frauds = sum(item.is_fraud for item in items)
    print(
        f"{len(items):,} transactions ({frauds:,} frauds) from {start} to {test_to}; labels "
        f"known {delay_days} days after each; measured from {test_from}",
        file=out,
        flush=True,
    )
    first = _local_midnight(test_from)
    rules = load_rules(settings.rules_path)
    started = time.monotonic()
    if offline:
        hash_key = settings.pii_hash_key.get_secret_value().encode()
        lists = default_list_view(hash_key)
        scores = decide_offline(rules, hash_key, lists, items, labels, first, out)
    else:
        scores = asyncio.run(decide_in_pipeline(settings, items, labels, first, out))
    elapsed = time.monotonic() - started
    mode = "in this process" if offline else "through broker, worker and learner"
    print(f"scored {mode} in {elapsed:.0f} s ({len(items) / elapsed:,.0f} events/s)", file=out)
    report(measured_set(items, scores, test_from, delay), out)
    return 0


def _local_midnight(day: date) -> datetime:
    """Midnight of a local (Brasilia, UTC-3) day, as the handbook's days are local."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return midnight - timedelta(hours=LOCAL_UTC_OFFSET_HOURS)
