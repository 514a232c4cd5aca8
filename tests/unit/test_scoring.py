"""Rules, bands and verdicts, straight from config/rules.toml (seed thresholds)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from config.rules import FlowThresholds, RulesError, default_rules_path, load_rules
from engine.admission import subject_of
from engine.decisions import DecisionLedger, Seen, build_decision
from engine.scoring import assess, band_for, verdict_for
from schemas.models import RiskBand, SubjectType, Verdict
from tests import factories

RULES = load_rules()
RULES_PATH = default_rules_path()


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
    assessment = assess(factories.gift(amount_cents=100_001), RULES)
    assert (assessment.score, assessment.band, assessment.verdict) == (
        100,
        RiskBand.CRITICAL,
        Verdict.BLOCK,
    )
    (reason,) = assessment.reasons
    assert reason.code == "GIFT_AMOUNT_OVER_LIMIT"
    assert reason.detail == "gift of R$ 1.000,01 exceeds the R$ 1.000,00 per-gift limit"


def test_gift_at_the_limit_is_allowed() -> None:
    assessment = assess(factories.gift(amount_cents=100_000), RULES)
    assert (assessment.score, assessment.verdict, assessment.reasons) == (0, Verdict.ALLOW, ())


def test_failed_pix_adds_twenty_points() -> None:
    failed = factories.gift(event_type="payment_failed", amount_cents=None)
    assessment = assess(failed, RULES)
    assert [(r.code, r.points) for r in assessment.reasons] == [("GIFT_PIX_FAILED", 20)]
    assert assessment.verdict is Verdict.ALLOW


def test_transactions_and_logins_have_no_rule_yet() -> None:
    for event in (factories.transaction(amount_cents=10**12), factories.login()):
        assert assess(event, RULES).verdict is Verdict.ALLOW


def test_assessment_is_deterministic_and_leaves_input_untouched() -> None:
    event = factories.gift(amount_cents=250_000)
    before = event.model_dump()
    assert assess(event, RULES) == assess(event, RULES)
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
        assess(event, RULES),
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
        assess(event, RULES),
        RULES.version,
        received_at=factories.NOW,
        decided_at=factories.NOW + timedelta(milliseconds=42),
    )
    assert decision.latency_ms == 42
    assert decision.rule_version == RULES.version
    assert (decision.subject_type, decision.subject_id) == (SubjectType.USER, event.giver_user_id)


def test_ledger_folds_redeliveries_and_flags_conflicts() -> None:
    event = factories.gift(amount_cents=200_000)
    first = build_decision(event, assess(event, RULES), "v1", factories.NOW, factories.NOW)
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


def test_flow_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="review_from must not exceed block_above"):
        FlowThresholds(review_from=90, block_above=80)
