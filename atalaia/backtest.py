"""``atalaia backtest``: replay archived events through the scoring code under the current
rules and a candidate (``--config NEW``), and show what would change.

Archived events are the input topics (the broker keeps them) with the labels topic, the
handbook file with its labels (``--handbook``), labels known 7 days after each transaction,
or the labelled scenarios of a seed (``--scenarios SEED``, ``engine.scenarios``).
Events from ``--warmup-days`` before ``--from`` build the windows, lists and model first and
are not measured. Both configurations run the same code as the worker (``engine.replay``),
their online models learning from the labels as they become known.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from atalaia.evaluate import EvalError, label_of, read_labelled
from config.rules import RuleSet
from config.settings import Settings
from engine.learning import event_label
from engine.lists import ListView
from engine.metrics import Confusion, confusion
from engine.money import format_brl
from engine.replay import Replay
from engine.scenarios import DEFAULT_USERS, generate, kind_of, listed_entries
from schemas.models import InputEvent, Label, Reason, TransactionEvent, Verdict
from streams.reader import read_decoded
from streams.topics import Topics
from streams.views import default_list_view

EXAMPLES = 3


@dataclass
class Run:
    """One configuration's measured decisions."""

    name: str
    version: str
    verdicts: Counter[Verdict] = field(default_factory=Counter)
    flagged: list[bool] = field(default_factory=list)
    blocked: list[bool] = field(default_factory=list)
    truth: list[bool] = field(default_factory=list)
    blocked_cents: int = 0
    fraud_blocked_cents: int = 0
    fraud_cents: int = 0
    fired: Counter[str] = field(default_factory=Counter)
    false_alarms: list[tuple[str, int, tuple[Reason, ...]]] = field(default_factory=list)
    missed: list[tuple[str, int, tuple[Reason, ...]]] = field(default_factory=list)

    def flagged_confusion(self) -> Confusion:
        return confusion(self.flagged, self.truth)

    def blocked_confusion(self) -> Confusion:
        return confusion(self.blocked, self.truth)


def _amount(event: InputEvent) -> int:
    return event.amount_cents if isinstance(event, TransactionEvent) else 0


def backtest(
    events: Sequence[InputEvent],
    labels: Sequence[Label],
    configs: dict[str, RuleSet],
    hash_key: bytes,
    lists: ListView,
    measure_from: datetime,
    measure_to: datetime,
) -> tuple[dict[str, Run], int]:
    """Each configuration over the same events; and how many measured events had a label."""
    truth = {event_id: label.is_fraud for label in labels for event_id in label.event_ids}
    runs: dict[str, Run] = {}
    verdicts: dict[str, dict[str, Verdict]] = {}
    measured = 0
    for name, rules in configs.items():
        run = runs[name] = Run(name, rules.version)
        verdicts[name] = {}
        replay = Replay(rules, hash_key, lists, learn=rules.model.enabled)
        for replayed in replay.run(events, labels):
            event, assessment = replayed.event, replayed.outcome.assessment
            if not measure_from <= event.occurred_at < measure_to:
                continue
            run.verdicts[assessment.verdict] += 1
            verdicts[name][event.event_id] = assessment.verdict
            amount = _amount(event)
            if assessment.verdict is Verdict.BLOCK:
                run.blocked_cents += amount
            if event.event_id not in truth:
                continue
            is_fraud = truth[event.event_id]
            flagged = assessment.verdict is not Verdict.ALLOW
            run.flagged.append(flagged)
            run.blocked.append(assessment.verdict is Verdict.BLOCK)
            run.truth.append(is_fraud)
            if is_fraud:
                run.fraud_cents += amount
                if assessment.verdict is Verdict.BLOCK:
                    run.fraud_blocked_cents += amount
            if flagged:
                run.fired.update(r.code for r in assessment.reasons if r.points > 0)
            example = (event.event_id, assessment.score, assessment.reasons)
            if flagged and not is_fraud and len(run.false_alarms) < EXAMPLES:
                run.false_alarms.append(example)
            if is_fraud and not flagged and len(run.missed) < EXAMPLES:
                run.missed.append(example)
        measured = len(run.truth)
    return runs, measured


def print_backtest(runs: dict[str, Run], out: TextIO) -> None:
    print("| config | ALLOW | REVIEW | BLOCK | TP | FP | FN | TN | precision | recall |", file=out)
    print("|---|---|---|---|---|---|---|---|---|---|", file=out)
    for run in runs.values():
        c = run.flagged_confusion()
        v = run.verdicts
        print(
            f"| {run.name} ({run.version}) | {v[Verdict.ALLOW]} | {v[Verdict.REVIEW]} | "
            f"{v[Verdict.BLOCK]} | {c.true_positives} | {c.false_positives} | "
            f"{c.false_negatives} | {c.true_negatives} | {c.precision:.3f} | {c.recall:.3f} |",
            file=out,
        )
    print("(flagged = REVIEW or BLOCK, on the labelled events)\n", file=out)
    for run in runs.values():
        b = run.blocked_confusion()
        print(
            f"{run.name}: blocked {format_brl(run.blocked_cents)} in all, "
            f"{format_brl(run.fraud_blocked_cents)} of {format_brl(run.fraud_cents)} in frauds "
            f"({b.true_positives} frauds and {b.false_positives} legitimate events blocked)",
            file=out,
        )
        top = ", ".join(f"{code} {n}" for code, n in run.fired.most_common(5))
        print(f"  rules that fired on flagged events: {top or 'none'}", file=out)
        for title, examples in (
            ("why fired (false alarms)", run.false_alarms),
            ("why missed (frauds let through)", run.missed),
        ):
            print(f"  {title}:", file=out)
            for event_id, score, reasons in examples:
                why = "; ".join(f"{r.code} {r.points:+d}: {r.detail}" for r in reasons)
                print(f"    {event_id} score {score}: {why or 'no rule fired'}", file=out)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def archived_events(
    settings: Settings, start: datetime, end: datetime
) -> tuple[list[InputEvent], list[Label]]:
    """The input topics and labels on the broker, between ``start`` and ``end``, in time order."""
    topics = Topics(settings.topic_prefix)
    accepted: dict[str, tuple[type[InputEvent], ...]] = {
        topic: (model,) for topic, model in topics.input_models().items()
    }
    events, _ = asyncio.run(read_decoded(settings.bootstrap_servers, accepted))
    labels, _ = asyncio.run(read_decoded(settings.bootstrap_servers, {topics.labels: (Label,)}))
    kept = sorted((e for e in events if start <= e.occurred_at < end), key=lambda e: e.occurred_at)
    unique = list({e.event_id: e for e in kept}.values())
    return unique, sorted(labels, key=lambda label: label.labelled_at)


def scenario_events(
    seed: int, hash_key: bytes, start: datetime, end: datetime, lists: ListView
) -> tuple[list[InputEvent], list[Label]]:
    """The labelled scenarios of ``seed`` between ``start`` and ``end``, each fraud or
    legitimate event labelled a week after it (a fraudster's set-up steps stay unlabelled,
    as they are neither), and the listed fraudsters' entries added to ``lists``."""
    stream = [
        i for i in generate(seed, DEFAULT_USERS, hash_key) if start <= i.event.occurred_at < end
    ]
    at = stream[0].event.occurred_at if stream else start
    for entry in listed_entries(hash_key, DEFAULT_USERS, at):
        lists.apply(entry)
    labels = [
        event_label(
            item.event, item.is_fraud, item.event.occurred_at + timedelta(days=7), "scenarios"
        )
        for item in stream
        if kind_of(item.label) != "setup"
    ]
    return [i.event for i in stream], sorted(labels, key=lambda label: label.labelled_at)


def backtest_main(
    settings: Settings,
    current: RuleSet,
    candidate: RuleSet,
    first: date,
    last: date,
    warmup_days: int,
    handbook: Path | None,
    out: TextIO,
    scenarios: int | None = None,
) -> int:
    start = _day_start(first) - timedelta(days=warmup_days)
    end = _day_start(last) + timedelta(days=1)
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    lists = default_list_view(hash_key)
    if handbook is not None:
        items = list(read_labelled(handbook, start.date(), last))
        events: list[InputEvent] = [item.event for item in items]
        labels = [label_of(item, timedelta(days=7)) for item in items]
    elif scenarios is not None:
        events, labels = scenario_events(scenarios, hash_key, start, end, lists)
    else:
        events, labels = archived_events(settings, start, end)
    if not any(_day_start(first) <= e.occurred_at < end for e in events):
        raise EvalError(f"no archived events between {first} and {last}")
    print(
        f"{len(events):,} events replayed ({warmup_days} days of warm-up before {first})", file=out
    )
    configs = {"current": current, "candidate": candidate}
    runs, measured = backtest(events, labels, configs, hash_key, lists, _day_start(first), end)
    print(f"{measured:,} measured events have a label\n", file=out)
    print_backtest(runs, out)
    return 0
