"""Backtests: the same events under two configurations, measured against labels."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from atalaia.backtest import backtest, print_backtest, scenario_events
from atalaia.learning import compare_shadow
from config.rules import load_rules
from engine.learning import utc_from_ms
from engine.lists import ListView
from schemas.models import (
    EventKind,
    Label,
    LoginEvent,
    ShadowDecision,
    SubjectType,
    TransactionEvent,
    Verdict,
)
from streams.views import default_list_view
from tests import factories

RULES = load_rules()
STRICT = RULES.model_copy(
    update={
        "version": "strict",
        "decision": RULES.decision.model_copy(
            update={"transaction": RULES.decision.transaction.model_copy(update={"review_from": 1})}
        ),
    }
)


def payments() -> tuple[list[TransactionEvent], list[Label]]:
    start = factories.NOW - timedelta(days=3)
    events = [
        factories.transaction(
            event_id=f"b-{i}",
            occurred_at=start + timedelta(minutes=10 * i),
            user_id=f"u{i % 3}",
            amount_cents=900_000 if i % 5 == 0 else 4_000,
        )
        for i in range(40)
    ]
    labels = [
        Label(
            label_id=f"l-{e.event_id}",
            subject_type=SubjectType.USER,
            subject_id=e.user_id,
            is_fraud=e.amount_cents > 100_000,
            event_ids=[e.event_id],
            labelled_at=e.occurred_at + timedelta(days=1),
            source="test",
        )
        for e in events
    ]
    return events, labels


def test_a_backtest_measures_both_configurations_on_the_same_labelled_events() -> None:
    events, labels = payments()
    frm, to = events[0].occurred_at, events[-1].occurred_at + timedelta(seconds=1)
    runs, measured = backtest(
        events,
        labels,
        {"current": RULES, "candidate": STRICT},
        b"k",
        default_list_view(b"k"),
        frm,
        to,
    )
    assert measured == 40
    current, candidate = runs["current"], runs["candidate"]
    assert sum(current.verdicts.values()) == sum(candidate.verdicts.values()) == 40
    assert candidate.verdicts[Verdict.ALLOW] < current.verdicts[Verdict.ALLOW]  # review from 1
    cc, nc = current.flagged_confusion(), candidate.flagged_confusion()
    assert cc.true_positives + cc.false_negatives == 8 == nc.true_positives + nc.false_negatives
    assert nc.false_positives >= cc.false_positives
    out = io.StringIO()
    print_backtest(runs, out)
    text = out.getvalue()
    assert "| current (" in text and "| candidate (strict) |" in text
    assert "why fired (false alarms)" in text and "why missed" in text


def test_the_shadow_comparison_counts_agreement_and_labelled_outcomes() -> None:
    def shadow(event_id: str, champion: Verdict, challenger: Verdict) -> ShadowDecision:
        return ShadowDecision(
            event_id=event_id,
            event_kind=EventKind.TRANSACTION,
            subject_id="u1",
            event_occurred_at=utc_from_ms(0),
            champion_decision=champion,
            champion_score=10,
            champion_version="v1",
            challenger_decision=challenger,
            challenger_score=40,
            challenger_version="v2",
        )

    shadows = [
        shadow("a", Verdict.ALLOW, Verdict.REVIEW),
        shadow("b", Verdict.ALLOW, Verdict.ALLOW),
        shadow("b", Verdict.ALLOW, Verdict.ALLOW),  # re-delivered: counts once
        shadow("c", Verdict.BLOCK, Verdict.BLOCK),
    ]
    fraud_a = Label(
        label_id="l",
        subject_type=SubjectType.USER,
        subject_id="u1",
        is_fraud=True,
        event_ids=["a"],
        labelled_at=utc_from_ms(1),
        source="case",
    )
    result = compare_shadow(shadows, [fraud_a])
    assert (result.events, result.agree, result.labelled) == (3, 2, 1)
    assert result.champion is not None and result.challenger is not None
    assert result.champion.false_negatives == 1 and result.challenger.true_positives == 1


def test_a_backtest_on_the_scenarios_labels_frauds_and_look_alikes_and_lists_the_fraudsters() -> (
    None
):
    start, end = datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    lists = ListView()
    events, labels = scenario_events(7, b"k", start, end, lists)
    assert events and all(start <= e.occurred_at < end for e in events)
    by_event = {label.event_ids[0]: label for label in labels}
    assert set(by_event) < {e.event_id for e in events}  # set-up steps stay unlabelled
    assert any(label.is_fraud for label in labels) and not all(lb.is_fraud for lb in labels)
    assert all(
        lb.labelled_at
        == next(e for e in events if e.event_id == lb.event_ids[0]).occurred_at + timedelta(days=7)
        for lb in labels[:20]
    )
    listed = [
        e for e in events if isinstance(e, LoginEvent) and (e.user_id or "").startswith("listed-")
    ]
    assert listed and all(lists.hits(e, b"k") for e in listed)
