"""Rules, bands and verdicts, straight from config/rules.toml (seed thresholds)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from config.rules import (
    FlowThresholds,
    RulesError,
    default_challenger_path,
    default_rules_path,
    load_challenger,
    load_rules,
)
from engine.admission import subject_of
from engine.decisions import DecisionLedger, Seen, build_decision
from engine.scoring import Assessment, assess, band_for, verdict_for
from schemas.models import InputEvent, RiskBand, SubjectType, Verdict
from tests import factories
from tests.factories import SEED_RULES, decide, decide_all

RULES = SEED_RULES
RULES_PATH = default_rules_path()


def codes(assessment: Assessment) -> list[str]:
    return [r.code for r in assessment.reasons]


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "LOW"),
        (29, "LOW"),
        (30, "MEDIUM"),
        (59, "MEDIUM"),
        (60, "HIGH"),
        (84, "HIGH"),
        (85, "CRITICAL"),
        (100, "CRITICAL"),
    ],
)
def test_capy_pay_bands(score: int, band: str) -> None:
    assert band_for(score, RULES.bands) is RiskBand(band)


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(0, "ALLOW"), (49, "ALLOW"), (50, "REVIEW"), (80, "REVIEW"), (81, "BLOCK"), (100, "BLOCK")],
)
def test_giftpix_classification(score: int, verdict: str) -> None:
    """< 50 normal, 50-80 monitor, > 80 block the action."""
    assert verdict_for(score, RULES.decision.gift) is Verdict(verdict)


def test_login_flow_thresholds() -> None:
    assert verdict_for(29, RULES.decision.login) is Verdict.ALLOW
    assert verdict_for(30, RULES.decision.login) is Verdict.REVIEW
    assert verdict_for(85, RULES.decision.login) is Verdict.REVIEW
    assert verdict_for(86, RULES.decision.login) is Verdict.BLOCK


def test_gift_over_per_gift_limit_is_blocked_with_reason() -> None:
    assessment = decide(factories.gift(amount_cents=100_001))
    assert (assessment.score, assessment.band, assessment.verdict) == (
        100,
        RiskBand.CRITICAL,
        Verdict.BLOCK,
    )
    (reason,) = assessment.reasons
    assert reason.code == "GIFT_AMOUNT_OVER_LIMIT"
    assert reason.detail == "gift of R$ 1.000,01 exceeds the R$ 1.000,00 per-gift limit"


def test_gift_at_the_limit_is_allowed() -> None:
    assessment = decide(factories.gift(amount_cents=100_000))
    assert (assessment.score, assessment.verdict, assessment.reasons) == (0, Verdict.ALLOW, ())
    assert assessment.features["gift_created.amount_cents.24h"] == 100_000


def test_failed_pix_adds_twenty_points() -> None:
    failed = factories.gift(event_type="payment_failed", amount_cents=None)
    assessment = decide(failed)
    assert [(r.code, r.points) for r in assessment.reasons] == [("GIFT_PIX_FAILED", 20)]
    assert assessment.verdict is Verdict.ALLOW


def test_plain_transactions_and_logins_are_allowed() -> None:
    quiet_tx = factories.transaction(network_flags=[], occurred_at="2026-11-20T15:00:00Z")
    quiet_login = factories.login(occurred_at="2026-11-20T15:00:00Z")
    for event in (quiet_tx, quiet_login):
        assert (decide(event).score, decide(event).verdict) == (0, Verdict.ALLOW)


def test_assessment_is_deterministic_and_leaves_input_untouched() -> None:
    event = factories.gift(amount_cents=250_000)
    before = event.model_dump()
    features = decide(event).features
    assert assess(event, RULES, features) == assess(event, RULES, features)
    assert event.model_dump() == before


def test_subjects_follow_who_acts() -> None:
    created = factories.gift()
    redeem = factories.gift(event_type="redeem_attempt", amount_cents=None, code_correct=False)
    assert subject_of(created).type is SubjectType.USER
    assert subject_of(created).id == created.giver_user_id
    assert subject_of(redeem).key == f"gift:{redeem.gift_id}"
    assert subject_of(factories.login(user_id="u9")).key == "user:u9"


def test_decision_carries_no_personal_data() -> None:
    event = factories.transaction()
    decision = build_decision(
        event,
        decide(event),
        RULES.version,
        received_at=factories.NOW,
        decided_at=factories.NOW,
    )
    dumped = decision.model_dump_json()
    for personal in (event.ip, event.email_hash, event.document_hash, event.phone_hash):
        assert personal is not None and personal not in dumped


def test_decision_latency_and_version() -> None:
    event = factories.gift(amount_cents=200_000)
    decision = build_decision(
        event,
        decide(event),
        RULES.version,
        received_at=factories.NOW,
        decided_at=factories.NOW + timedelta(milliseconds=42),
    )
    assert decision.latency_ms == 42
    assert decision.rule_version == RULES.version
    assert (decision.subject_type, decision.subject_id) == (SubjectType.USER, event.giver_user_id)


def test_ledger_folds_redeliveries_and_flags_conflicts() -> None:
    event = factories.gift(amount_cents=200_000)
    first = build_decision(event, decide(event), "v1", factories.NOW, factories.NOW)
    ledger = DecisionLedger(capacity=2)
    assert ledger.observe(first) is Seen.FIRST
    assert ledger.observe(first.model_copy(update={"latency_ms": 999})) is Seen.DUPLICATE
    assert ledger.observe(first.model_copy(update={"decision": Verdict.ALLOW})) is Seen.CONFLICT
    assert (ledger.duplicates, ledger.conflicts) == (1, 1)
    for n in range(3):
        ledger.observe(first.model_copy(update={"event_id": f"other-{n}"}))
    assert len(ledger) == 2  # bounded: the oldest ids were forgotten


def test_rules_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="rules file not found"):
        load_rules(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("version = ")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(broken)
    bad = tmp_path / "bad.toml"
    text = Path(str(RULES_PATH)).read_text().replace("review_from = 50", "review_from = 90")
    bad.write_text(text)
    with pytest.raises(RulesError, match="review_from must not exceed block_above"):
        load_rules(bad)
    text = Path(str(RULES_PATH)).read_text()
    section = re.compile(r"\[alerts\.triggers\.audit_conflict\]\n(?:\w+ = .*\n)+")
    assert section.search(text)
    bad.write_text(section.sub("", text))
    with pytest.raises(RulesError, match=r"alerts\.triggers lacks audit_conflict"):
        load_rules(bad)


def test_flow_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="review_from must not exceed block_above"):
        FlowThresholds(review_from=90, block_above=80)


def _creations(giver: str, amounts: list[int], spacing_s: int) -> list[InputEvent]:
    start = factories.NOW - timedelta(days=1)
    return [
        factories.gift(
            giver_user_id=giver,
            amount_cents=amount,
            occurred_at=start + timedelta(seconds=n * spacing_s),
        )
        for n, amount in enumerate(amounts)
    ]


def test_sixth_gift_in_a_day_is_blocked() -> None:
    results = decide_all(_creations("g-count", [1_000] * 6, spacing_s=3_600))
    assert [r.verdict for r in results] == [Verdict.ALLOW] * 5 + [Verdict.BLOCK]
    assert codes(results[5]) == ["GIFT_DAILY_COUNT_EXCEEDED"]
    assert results[5].reasons[0].detail == "6 gifts created in 24h, limit 5"


def test_a_day_is_a_sliding_24h_window() -> None:
    results = decide_all(_creations("g-slide", [1_000] * 7, spacing_s=5 * 3_600))
    assert all(r.verdict is Verdict.ALLOW for r in results)
    assert [r.features["gift_created.count.24h"] for r in results] == [1, 2, 3, 4, 5, 5, 5]


def test_daily_amount_over_two_thousand_reais_is_blocked() -> None:
    results = decide_all(_creations("g-amount", [90_000, 90_000, 30_000], spacing_s=3_600))
    assert [r.verdict for r in results] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.BLOCK]
    assert results[2].reasons[0].detail == "R$ 2.100,00 in gifts in 24h, limit R$ 2.000,00"


def test_rapid_creation_adds_forty_points() -> None:
    results = decide_all(_creations("g-rapid", [1_000] * 3, spacing_s=60))
    assert codes(results[2]) == ["GIFT_RAPID_CREATION"]
    assert (results[2].score, results[2].verdict) == (40, Verdict.ALLOW)


def test_rapid_creation_from_a_suspicious_ip_is_reviewed() -> None:
    events = _creations("g-both", [1_000] * 2, spacing_s=60)
    events.append(
        factories.gift(
            giver_user_id="g-both",
            amount_cents=1_000,
            occurred_at=events[-1].occurred_at + timedelta(seconds=60),
            network_flags=["TOR"],
        )
    )
    last = decide_all(events)[-1]
    assert codes(last) == ["GIFT_RAPID_CREATION", "GIFT_SUSPICIOUS_IP"]
    assert (last.score, last.verdict) == (90, Verdict.BLOCK)


def test_creation_after_three_failed_payments_is_blocked() -> None:
    start = factories.NOW - timedelta(hours=5)
    failures = [
        factories.gift(
            giver_user_id="g-fail",
            event_type="payment_failed",
            amount_cents=None,
            occurred_at=start + timedelta(minutes=n * 20),
        )
        for n in range(3)
    ]
    creation = factories.gift(giver_user_id="g-fail", occurred_at=start + timedelta(hours=2))
    results = decide_all([*failures, creation])
    assert all(codes(r) == ["GIFT_PIX_FAILED"] for r in results[:3])
    assert codes(results[3]) == ["GIFT_FAILED_PAYMENTS_LIMIT"]
    assert results[3].verdict is Verdict.BLOCK


def test_code_brute_force_is_flagged_then_blocked() -> None:
    start = factories.NOW - timedelta(hours=1)
    attempts = [
        factories.gift(
            gift_id="g-brute",
            event_type="redeem_attempt",
            amount_cents=None,
            code_correct=False,
            occurred_at=start + timedelta(seconds=n),
        )
        for n in range(5)
    ]
    attempts.append(
        factories.gift(
            gift_id="g-brute",
            event_type="redeem_attempt",
            amount_cents=None,
            code_correct=True,
            occurred_at=start + timedelta(seconds=9),
        )
    )
    results = decide_all(attempts)
    assert [codes(r) for r in results] == [
        [],
        [],
        ["GIFT_CODE_ATTEMPTS"],
        ["GIFT_CODE_ATTEMPTS"],
        ["GIFT_CODE_ATTEMPTS"],
        ["GIFT_CODE_ATTEMPTS_EXCEEDED"],
    ]
    assert results[2].verdict is Verdict.ALLOW and results[5].verdict is Verdict.BLOCK


def test_redelivered_event_gets_the_same_features_and_verdict() -> None:
    events = _creations("g-dup", [1_000] * 6, spacing_s=60)
    replayed = [*events, events[2], events[5]]
    results = decide_all(replayed)
    assert results[6] == results[2] and results[7] == results[5]
    assert results[5].features["gift_created.count.24h"] == 6


def test_unknown_windows_in_rules_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES_PATH.read_text().replace('day_window = "24h"', 'day_window = "1d"'))
    with pytest.raises(RulesError, match=r"unknown velocity window\(s\): 1d"):
        load_rules(bad)


def test_a_horizon_longer_than_the_days_a_state_keeps_is_refused(tmp_path: Path) -> None:
    longer = tmp_path / "longer.toml"
    longer.write_text(RULES_PATH.read_text().replace("30d = 2592000", "30d = 2764800"))
    with pytest.raises(RulesError, match=r"horizon must be at most 31 days"):
        load_rules(longer)


def test_a_challenger_file_says_only_what_differs_from_the_rules(tmp_path: Path) -> None:
    overlay = tmp_path / "challenger.toml"
    overlay.write_text('version = "c1"\n[decision.transaction]\nreview_from = 10\n')
    challenger = load_challenger(default_rules_path(), overlay)
    champion = load_rules()
    assert challenger.version == "c1" and challenger.decision.transaction.review_from == 10
    assert challenger.decision.transaction.block_above == champion.decision.transaction.block_above
    assert challenger.model == champion.model
    overlay.write_text("[decision.transaction]\nreview_from = -1\n")
    with pytest.raises(RulesError, match=r"challenger\.toml: decision\.transaction\.review_from"):
        load_challenger(default_rules_path(), overlay)
    shipped = load_challenger(default_rules_path(), default_challenger_path())
    assert shipped.model.family != champion.model.family  # its own model, learned beside
