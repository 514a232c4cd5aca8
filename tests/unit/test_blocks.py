"""GiftPix automatic actions: blocks placed by BLOCK decisions, honoured, and expiring on time."""

from __future__ import annotations

from datetime import timedelta

from config.rules import load_rules
from engine.decide import decide_event
from engine.features import record_redemption
from engine.velocity import VelocityState
from schemas.models import SubjectType, Verdict
from tests import factories
from tests.factories import run_all

START = factories.NOW - timedelta(days=3)


def _gift(giver: str, minutes: float, **fields: object) -> factories.GiftEvent:
    return factories.gift(
        giver_user_id=giver,
        amount_cents=fields.pop("amount_cents", 1_000),
        occurred_at=START + timedelta(minutes=minutes),
        **fields,
    )


def test_a_blocked_creation_blocks_the_giver_for_a_day_then_expires() -> None:
    over = _gift("b1", 0, amount_cents=150_000)
    during = _gift("b1", 60)
    after = _gift("b1", 24 * 60 + 1)
    first, second, third = run_all([over, during, after])
    (block,) = first.blocks
    assert (block.entity_type, block.entity_id, block.reason) == (
        SubjectType.USER,
        "b1",
        "GIFT_AMOUNT_OVER_LIMIT",
    )
    assert block.expires_at - block.created_at == timedelta(days=1)
    assert [r.code for r in second.assessment.reasons] == ["GIFT_SUBJECT_BLOCKED"]
    assert second.assessment.verdict is Verdict.BLOCK
    assert second.blocks == []  # a block caused by a block does not extend itself
    assert third.assessment.verdict is Verdict.ALLOW and not third.assessment.reasons


def test_redemption_brute_force_blocks_the_gift_for_an_hour() -> None:
    attempts = [
        factories.gift(
            gift_id="bf",
            event_type="redeem_attempt",
            amount_cents=None,
            code_correct=False,
            occurred_at=START + timedelta(seconds=n),
        )
        for n in range(6)
    ]
    later = factories.gift(
        gift_id="bf",
        event_type="redeem_attempt",
        amount_cents=None,
        code_correct=True,
        occurred_at=START + timedelta(minutes=30),
    )
    much_later = later.model_copy(
        update={"event_id": "much-later", "occurred_at": START + timedelta(hours=2)}
    )
    outcomes = run_all([*attempts, later, much_later])
    (block,) = outcomes[5].blocks
    assert (block.entity_type, block.reason) == (SubjectType.GIFT, "GIFT_CODE_ATTEMPTS_EXCEEDED")
    assert block.expires_at - block.created_at == timedelta(hours=1)
    assert "GIFT_SUBJECT_BLOCKED" in [r.code for r in outcomes[6].assessment.reasons]
    assert "GIFT_SUBJECT_BLOCKED" not in [r.code for r in outcomes[7].assessment.reasons]


def test_the_blacklist_factor_reads_fraud_blocks_for_transactions() -> None:
    over = _gift("payer", 0, amount_cents=150_000)
    pix = factories.transaction(
        user_id="payer", network_flags=[], occurred_at=START + timedelta(minutes=5)
    )
    # Gifts and transactions of one user share the user's state (same subject key).
    outcomes = run_all([over, pix])
    reasons = {r.code: r.points for r in outcomes[1].assessment.reasons}
    assert reasons["BLACKLIST_FRAUD_BLOCK"] == 60
    assert outcomes[1].assessment.verdict is Verdict.REVIEW


def test_every_gift_action_is_a_fraud_event_without_ip() -> None:
    gift = _gift("fe", 0, network_flags=["TOR"])
    (outcome,) = run_all([gift])
    event = outcome.fraud_event
    assert event is not None
    assert (event.user_id, event.gift_id, event.risk_score) == ("fe", gift.gift_id, 50)
    assert event.network_flags == ["TOR"]
    assert gift.ip is not None and gift.ip not in event.model_dump_json()
    assert run_all([factories.transaction()])[0].fraud_event is None


def test_replays_place_the_same_block() -> None:
    over = _gift("rp", 0, amount_cents=150_000)
    first, again = run_all([over, over])
    assert first.blocks == again.blocks


def test_blocks_survive_serialisation_and_expire_by_event_time() -> None:
    state = VelocityState()
    state.block("X", until_ms=10_000)
    copy = VelocityState.from_bytes(state.to_bytes())
    assert copy.active_blocks(9_999) == {"X": 10_000}
    assert copy.active_blocks(10_000) == {}


def test_a_block_stops_creation_not_the_giver_s_other_gift_steps() -> None:
    over = _gift("steps", 0, amount_cents=150_000)
    paid = _gift("steps", 10, event_type="gift_paid")
    failed = _gift("steps", 20, event_type="payment_failed", amount_cents=None)
    outcomes = run_all([over, paid, failed])
    assert outcomes[1].assessment.verdict is Verdict.ALLOW
    assert [r.code for r in outcomes[2].assessment.reasons] == ["GIFT_PIX_FAILED"]


def test_mass_refunds_block_the_giver_and_its_later_refunds() -> None:
    """'Bloqueio de estornos em massa': the 4th refund request in a day is blocked, the giver
    too (no more automatic refunds or new gifts for a day)."""
    created = [_gift("refunder", n * 60 - 2 * 1440, gift_id=f"g{n}") for n in range(5)]
    refunds = [
        _gift("refunder", n * 30, event_type="refund_requested", gift_id=f"g{n}") for n in range(5)
    ]
    outcomes = run_all([*created, *refunds, _gift("refunder", 200)])[len(created) :]
    verdicts = [o.assessment.verdict for o in outcomes]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.BLOCK] * 3
    assert [r.code for r in outcomes[3].assessment.reasons] == ["GIFT_MASS_REFUND"]
    assert "4 refund requests in 24h, limit 3" in outcomes[3].assessment.reasons[0].detail
    (block,) = outcomes[3].blocks
    assert (block.entity_id, block.reason) == ("refunder", "GIFT_MASS_REFUND")
    assert [r.code for r in outcomes[4].assessment.reasons] == [
        "GIFT_SUBJECT_BLOCKED",
        "GIFT_MASS_REFUND",
    ]
    assert [r.code for r in outcomes[5].assessment.reasons] == ["GIFT_SUBJECT_BLOCKED"]


def test_a_refund_only_for_a_gift_the_giver_created_within_the_policy_window() -> None:
    """'Estorno automático apenas ... dentro da política configurada': refund_window (7d) after
    the giver created the gift; older or unknown gifts go to support, the giver stays free."""
    old = _gift("policy", -8 * 1440, gift_id="g-old")
    recent = _gift("policy", -6 * 1440, gift_id="g-recent")
    refunds = [
        _gift("policy", n, event_type="refund_requested", gift_id=gift_id)
        for n, gift_id in enumerate(("g-old", "g-unknown", "g-recent"))
    ]
    *_, too_old, unknown, granted, later = run_all([old, recent, *refunds, _gift("policy", 10)])
    for refused in (too_old, unknown):
        assert refused.assessment.verdict is Verdict.BLOCK
        (reason,) = refused.assessment.reasons
        assert reason.code == "GIFT_REFUND_OUTSIDE_POLICY"
        assert "in the last 7d" in reason.detail
        assert refused.blocks == []
    assert granted.assessment.verdict is Verdict.ALLOW
    assert later.assessment.verdict is Verdict.ALLOW


def test_a_refund_of_a_redeemed_gift_is_refused_without_blocking_the_giver() -> None:
    """'Estorno automático apenas se o gift nunca foi resgatado': the giver's state learns of
    the redemption (sent there by the agent after the gift's decision)."""
    rules = load_rules()
    giver = VelocityState()
    for gift_id in ("g-used", "g-new"):
        decide_event(giver, _gift("refunds", 0, gift_id=gift_id), rules)
    redeemed = _gift("refunds", 10, event_type="gift_redeemed", gift_id="g-used")
    assert record_redemption(giver, redeemed, rules.velocity.horizon_s)
    assert not record_redemption(giver, redeemed, rules.velocity.horizon_s)  # re-delivery
    used = decide_event(
        giver, _gift("refunds", 20, event_type="refund_requested", gift_id="g-used"), rules
    )
    assert used.assessment.verdict is Verdict.BLOCK
    assert [r.code for r in used.assessment.reasons] == ["GIFT_REFUND_AFTER_REDEMPTION"]
    assert used.blocks == []
    unused = decide_event(
        giver, _gift("refunds", 30, event_type="refund_requested", gift_id="g-new"), rules
    )
    assert unused.assessment.verdict is Verdict.ALLOW
    early_giver = VelocityState()
    decide_event(early_giver, _gift("refunds", 0, gift_id="g-used"), rules)
    early = decide_event(
        early_giver, _gift("refunds", 5, event_type="refund_requested", gift_id="g-used"), rules
    )
    assert early.assessment.verdict is Verdict.ALLOW  # no redemption known at that time
