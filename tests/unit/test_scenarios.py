"""The scenario generator is reproducible and labels everything; the per-group figures are
counted as documented."""

from __future__ import annotations

from engine.scenarios import (
    END,
    FRAUD_BEHAVIOURS,
    LOOKALIKES,
    NORMAL,
    generate,
    scenario_report,
)
from schemas.models import Verdict


def test_same_seed_same_events_and_every_event_labelled() -> None:
    first, again, other = generate(3, 30), generate(3, 30), generate(4, 30)
    assert [(i.event, i.label) for i in first] == [(i.event, i.label) for i in again]
    assert [i.event for i in first] != [i.event for i in other]
    labels = {i.label for i in first}
    assert labels >= {*FRAUD_BEHAVIOURS, *LOOKALIKES, NORMAL}
    assert all(i.label for i in first)
    ids = [i.event.event_id for i in first]
    assert len(set(ids)) == len(ids)
    times = [i.event.occurred_at for i in first]
    assert times == sorted(times) and times[-1] < END


def test_default_size_gives_every_group_enough_events() -> None:
    stream = generate()
    counts: dict[str, int] = {}
    for item in stream:
        counts[item.label] = counts.get(item.label, 0) + 1
    assert 20_000 <= len(stream) <= 40_000
    assert all(counts[g] >= 90 for g in (*FRAUD_BEHAVIOURS, *LOOKALIKES))
    fraud_share = sum(i.is_fraud for i in stream) / len(stream)
    assert 0.025 <= fraud_share <= 0.05


def test_report_counts_review_and_block_as_caught() -> None:
    labels = [
        ("a", "card_testing"),
        ("b", "card_testing"),
        ("c", "card_testing"),
        ("d", "legit:normal"),
        ("e", "legit:normal"),
        ("f", "legit:traveller"),
        ("g", "setup:refund_abuse"),
        ("h", "structuring"),
    ]
    verdicts = {
        "a": Verdict.BLOCK,
        "b": Verdict.REVIEW,
        "c": Verdict.ALLOW,
        "d": Verdict.ALLOW,
        "e": Verdict.REVIEW,
        "f": Verdict.ALLOW,
        "g": Verdict.BLOCK,
    }
    report = scenario_report(labels, verdicts)
    rows = [(r.group, r.kind, r.events, r.caught) for r in report.rows]
    assert rows == [
        ("card_testing", "fraud", 3, 2),
        ("legit:normal", "legit", 2, 1),
        ("legit:traveller", "legit", 1, 0),
        ("setup:refund_abuse", "setup", 1, 1),
    ]
    assert report.undecided == 1
    assert report.recall == 2 / 3
    assert report.fpr == 1 / 3
    assert report.precision == 2 / 3
