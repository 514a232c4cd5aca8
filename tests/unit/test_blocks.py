"""GiftPix automatic actions: blocks placed by BLOCK decisions, honoured, and expiring on time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.rules import RulesError, default_rules_path, load_rules, parse_rules
from engine.decide import Outcome, decide_event
from engine.entities import BlockView, block_stops, record_entity
from engine.features import record_redemption
from engine.lists import ListView
from engine.replay import Replay
from engine.velocity import VelocityState
from schemas.models import (
    BlockedEntityType,
    FraudBlock,
    GiftEvent,
    InputEvent,
    SubjectType,
    Verdict,
)
from tests import factories
from tests.factories import SEED_RULES, run_all

START = factories.NOW - timedelta(days=3)


def _gift(giver: str, minutes: float, **fields: object) -> GiftEvent:
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


def test_a_block_does_not_reach_back_to_an_earlier_event_arriving_late() -> None:
    """Gifts and transactions come on their own topics: an event that happened before the
    block was placed can be decided after it, and must not be under it."""
    over = _gift("late", 60, amount_cents=150_000)
    earlier = _gift("late", 30)  # happened before the block, decided after it
    later = _gift("late", 90)
    first, late, after = run_all([over, earlier, later])
    assert first.blocks and late.assessment.verdict is Verdict.ALLOW
    assert [r.code for r in after.assessment.reasons] == ["GIFT_SUBJECT_BLOCKED"]


def test_a_state_keeps_when_its_blocks_start_and_reads_older_states() -> None:
    state = VelocityState()
    state.block("R", until_ms=2_000_000, from_ms=1_000_000)
    state.block("R", until_ms=1_500_000, from_ms=1_200_000)  # merged: earliest start
    for kept in (state, VelocityState.from_bytes(state.to_bytes())):
        assert kept.active_blocks(999_999) == {}
        assert kept.active_blocks(1_000_000) == {"R": 2_000_000}
        assert kept.active_blocks(2_000_000) == {}
    older = VelocityState.from_bytes(b'{"w":null,"m":{},"s":{},"b":{"R":2000000},"p":null}')
    assert older.active_blocks(0) == {"R": 2_000_000}  # no start kept: in force as before
    older.block("R", until_ms=3_000_000, from_ms=2_500_000)  # a later one keeps it so
    assert older.active_blocks(0) == {"R": 3_000_000}


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


def test_in_the_default_profile_a_giver_s_block_stops_gifts_not_payments() -> None:
    """The seed blocks new GiftPix ("Bloquear criação de novos GiftPix"), not PIX."""
    over = _gift("payer2", 0, amount_cents=150_000)
    pix = factories.transaction(
        user_id="payer2", network_flags=[], occurred_at=START + timedelta(minutes=5)
    )
    again = _gift("payer2", 10, amount_cents=5_000)
    blocked, paid, refused = run_all([over, pix, again], load_rules())
    assert blocked.blocks and blocked.assessment.verdict is Verdict.BLOCK
    assert "BLACKLIST_FRAUD_BLOCK" not in [r.code for r in paid.assessment.reasons]
    assert paid.assessment.verdict is Verdict.ALLOW
    assert "GIFT_SUBJECT_BLOCKED" in [r.code for r in refused.assessment.reasons]


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
    rules = SEED_RULES  # the default profile reviews a second refund within the hour
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


# Seed 5.2 "Falhas consecutivas: bloqueio temporário", per redeemer (its device), across gifts.
RULES = SEED_RULES
RUN = RULES.gift.consecutive_failures
DEVICE = "dev-redeemer"
RUN_ONLY = RULES.entities.model_copy(
    update={
        "limits": tuple(
            limit for limit in RULES.entities.limits if limit.entity is not BlockedEntityType.DEVICE
        )
    }
)
"""The entity rules without the device's own limits (code spraying blocks the same device
from its second gift): the run's counting on its own."""


def _attempt(n: int, seconds: float, correct: bool, **fields: object) -> GiftEvent:
    """A redemption attempt on gift ``n`` (each its own subject) from DEVICE, each from an IP
    of its own: only the device ties them together."""
    return factories.redemption(
        f"gift-{n}",
        correct,
        device_id=DEVICE,
        ip=f"198.51.100.{n % 250}",
        occurred_at=START + timedelta(seconds=seconds),
        **fields,
    )


def _wrong(n: int, seconds: float | None = None) -> GiftEvent:
    return _attempt(n, n * 10 if seconds is None else seconds, correct=False)


def _placed(state: VelocityState, events: list[GiftEvent]) -> list[list[FraudBlock]]:
    """The blocks each event places when it reaches the device's state."""
    return [
        record_entity(
            state,
            event,
            BlockedEntityType.DEVICE,
            DEVICE,
            RUN_ONLY,
            RUN,
            RULES.velocity.windows,
            RULES.velocity.horizon_s,
        )
        for event in events
    ]


def test_consecutive_wrong_codes_across_gifts_block_the_redeemer_at_the_nth_not_before() -> None:
    wrong = [_wrong(n) for n in range(RUN.failures)]
    placed = _placed(VelocityState(), wrong)
    assert placed[:-1] == [[]] * (RUN.failures - 1)  # N-1 in a row: nothing yet
    (block,) = placed[-1]
    assert (block.entity_type, block.entity_id, block.reason) == (
        BlockedEntityType.DEVICE,
        DEVICE,
        "GIFT_CONSECUTIVE_FAILURES",
    )
    assert block.created_at == wrong[-1].occurred_at
    assert block.expires_at - block.created_at == timedelta(seconds=RUN.block_seconds)
    assert block.event_id == wrong[-1].event_id


def test_a_correct_code_resets_the_run() -> None:
    before = [_wrong(n) for n in range(RUN.failures - 1)]
    correct = _attempt(50, 500, correct=True)
    after = [_wrong(n, 600 + n) for n in range(60, 60 + RUN.failures - 1)]
    state = VelocityState()
    assert _placed(state, [*before, correct, *after]) == [[]] * (2 * RUN.failures - 1)
    (block,) = _placed(state, [_wrong(99, 700)])[0]  # the Nth since the correct one
    assert block.created_at == START + timedelta(seconds=700)


def test_wrong_codes_spread_over_more_than_the_window_are_not_a_run() -> None:
    window_s = RULES.velocity.windows[RUN.window]
    spread = [_wrong(n, n * window_s) for n in range(RUN.failures)]
    assert _placed(VelocityState(), spread) == [[]] * RUN.failures


def test_re_delivered_attempts_do_not_count_twice() -> None:
    wrong = [_wrong(n) for n in range(RUN.failures)]
    state = VelocityState()
    twice = [event for event in wrong[:-1] for event in (event, event)]
    assert _placed(state, twice) == [[]] * len(twice)  # N-1 attempts, each delivered twice
    (block,) = _placed(state, [wrong[-1]])[0]
    # The Nth re-delivered gets back the same block (in case it was not published); no new one.
    assert _placed(state, [wrong[-1], wrong[0]]) == [[block], []]
    at_ms = int(wrong[-1].occurred_at.timestamp() * 1000)
    assert state.window("redeem_failed", at_ms, 3600).count == RUN.failures


def test_out_of_order_attempts_block_once_from_the_newest() -> None:
    """Attempts reach the device after their gifts' decisions, in any order."""
    wrong = [_wrong(n) for n in range(RUN.failures)]
    late_correct = _attempt(77, -60, correct=True)  # before all of them: resets nothing
    state = VelocityState()
    placed = _placed(state, [*wrong[::-1], late_correct])
    blocks = [block for blocks in placed for block in blocks]
    assert [b.reason for b in blocks] == ["GIFT_CONSECUTIVE_FAILURES"]
    assert blocks[0].created_at == wrong[-1].occurred_at
    # A correct code between the first wrong one and the others breaks the run, in whatever
    # order they arrive.
    broken = [_wrong(0, 0), _attempt(60, 5, correct=True), *wrong[1:]]
    for arrival in (broken, broken[::-1]):
        assert _placed(VelocityState(), arrival) == [[]] * len(broken)


def _replayed(events: list[InputEvent]) -> list[Outcome]:
    """Decided as the workers do: each gift with its own state, the device counting every
    attempt in its own, and its blocks reaching the next decisions."""
    rules = RULES.model_copy(update={"entities": RUN_ONLY})
    replay = Replay(rules, b"test-key", ListView(), learn=False)
    return [replay.decide(event) for event in events]


def test_the_block_stops_the_redeemer_s_redemptions_until_it_expires() -> None:
    n, seconds = RUN.failures, RUN.block_seconds
    wrong = [_wrong(k) for k in range(n)]
    last_s = (n - 1) * 10  # when the block starts
    during = [
        _attempt(100, last_s + 30, correct=True),
        *(_wrong(110 + k, last_s + seconds - n + 1 + k) for k in range(n - 1)),  # to its end
    ]
    creation = _gift("giver-d", (last_s + 60) / 60, device_id=DEVICE, gift_id="new-gift")
    payment = factories.transaction(
        device_id=DEVICE, network_flags=[], occurred_at=START + timedelta(seconds=last_s + 60)
    )
    after = [  # a wrong code first: those entered before the end place no new block
        _attempt(200, last_s + seconds, correct=False),
        _attempt(201, last_s + seconds + 5, correct=True),
    ]
    outcomes = _replayed([*wrong, during[0], creation, payment, *during[1:], *after])
    # The nth wrong code is counted before it is decided: the block it places stops it.
    assert [o.assessment.verdict for o in outcomes[: n - 1]] == [Verdict.ALLOW] * (n - 1)
    stopped = [outcomes[n - 1], outcomes[n], *outcomes[n + 3 : -2]]
    assert [[r.code for r in o.assessment.reasons] for o in stopped] == [
        ["GIFT_ENTITY_BLOCKED"]
    ] * (n + 1)
    assert all(o.assessment.verdict is Verdict.BLOCK and o.blocks == [] for o in stopped)
    # Only redemptions: the device still creates gifts and pays.
    assert outcomes[n + 1].assessment.verdict is Verdict.ALLOW
    assert "BLACKLIST_ENTITY_BLOCK" not in [r.code for r in outcomes[n + 2].assessment.reasons]
    # Temporary: once it has ended, the redeemer's attempts are scored as anyone's.
    assert [(o.assessment.verdict, o.assessment.reasons) for o in outcomes[-2:]] == [
        (Verdict.ALLOW, ()),
        (Verdict.ALLOW, ()),
    ]


def test_a_redeemer_block_stops_only_redemption_steps() -> None:
    (block,) = _placed(VelocityState(), [_wrong(n) for n in range(RUN.failures)])[-1]
    view = BlockView()
    view.apply(block)
    at_ms = int(block.created_at.timestamp() * 1000)
    key = f"device:{DEVICE}"
    assert view.blocked([key], at_ms, True) and not view.blocked([key], at_ms, False)
    assert not view.blocked([key], int(block.expires_at.timestamp() * 1000), True)
    assert block_stops(block.reason, _wrong(1))
    assert not block_stops(block.reason, factories.login(device_fingerprint=DEVICE))
    assert block_stops("IP_REDEMPTION_RATE_LIMIT", factories.login())


@pytest.mark.parametrize(
    ("edits", "error"),
    [
        ({"failures = 3 ": "failures = 1 "}, "greater than or equal to 2"),
        ({'window = "1h"         # ours': 'window = "2h"'}, r"unknown velocity window\(s\): 2h"),
        ({"block_seconds = 900 ": "block_seconds = 0 "}, "greater than 0"),
        (
            {
                'tracked = ["ip", "device", ': 'tracked = ["ip", ',
                'entity = "device"': 'entity = "ip"',
            },
            "must include device",
        ),
    ],
)
def test_the_consecutive_failures_rule_is_validated(edits: dict[str, str], error: str) -> None:
    text = default_rules_path().read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)  # every device limit moved with the tracking
    with pytest.raises(RulesError, match=error):
        parse_rules(text, "test")
