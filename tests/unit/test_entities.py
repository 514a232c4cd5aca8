"""Entities across subjects: keys without raw IPs, exact counts, limits placing blocks once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.rules import Entities, load_rules
from engine.accounts import AccountView
from engine.decide import decide_event
from engine.entities import (
    CODE_SPRAYING,
    REDEMPTION_ONLY_REASONS,
    BlockView,
    entity_keys,
    keyed_id,
    record_entity,
)
from engine.lists import ListView
from engine.networks import NetworkIndex
from engine.replay import Replay
from engine.step import Scoring, Views, count_step, decide_step
from engine.velocity import VelocityState
from schemas.models import (
    SUBJECT_ENTITY_TYPES,
    BlockedEntityType,
    GiftEvent,
    TransactionEvent,
    Verdict,
)
from tests import factories

RULES = load_rules()
ENTITY_TYPES = set(BlockedEntityType) - SUBJECT_ENTITY_TYPES
KEY = b"test-key"
IP = "198.51.100.23"


def _wrong_code(n: int, ip: str = IP, gifts: int = 2) -> GiftEvent:
    """The ``n``-th wrong code from ``ip``, on one of ``gifts`` gifts (two: no spraying)."""
    at = factories.NOW - timedelta(minutes=30) + timedelta(seconds=n)
    return factories.redemption(f"g-{n % gifts}", False, ip=ip, device_id=None, occurred_at=at)


def _count(state: VelocityState, events: list[GiftEvent]) -> list[list[str]]:
    return [
        [
            b.reason
            for b in record_entity(
                state,
                event,
                BlockedEntityType.IP,
                keyed_id(IP, KEY),
                RULES.entities,
                RULES.gift.consecutive_failures,
                RULES.velocity.windows,
                RULES.velocity.horizon_s,
            )
        ]
        for event in events
    ]


def test_entity_keys_hash_ips_with_the_configured_key() -> None:
    event = factories.gift(ip=IP, device_id="dev-1", recipient_key_hash=None)
    keys = entity_keys(event, RULES.entities, KEY)
    assert sorted(keys) == sorted([f"ip:{keyed_id(IP, KEY)}", "device:dev-1"])
    assert IP not in "".join(keys)
    assert entity_keys(event, RULES.entities, b"other-key") != keys
    bare = factories.gift(ip=None, device_id=None, recipient_key_hash=None)
    assert entity_keys(bare, RULES.entities, KEY) == []


def test_a_transaction_names_its_card_account_document_terminal_and_counterparty() -> None:
    tx = factories.transaction(
        card_id="card-9", account_id="acc-9", terminal_id="t-9", ip=None, device_id=None
    )
    everything = RULES.entities.model_copy(update={"tracked": frozenset(ENTITY_TYPES)})
    assert sorted(entity_keys(tx, everything, KEY)) == sorted(
        [
            "card:card-9",
            "account:acc-9",
            f"document:{tx.document_hash}",
            "terminal:t-9",
            f"counterparty:pix:{tx.counterparty_pix_key_hash}",
        ]
    )
    wallet = "0xAbC0000000000000000000000000000000000001"
    to_wallet = factories.transaction(counterparty_pix_key_hash=None, counterparty_wallet=wallet)
    keys = "".join(entity_keys(to_wallet, everything, KEY))
    assert f"counterparty:wallet:{keyed_id(wallet, KEY)}" in keys
    assert wallet.lower() not in keys.lower()  # a wallet is known by its keyed hash only
    gift = factories.gift(ip=None, device_id=None)
    assert entity_keys(gift, everything, KEY) == [f"counterparty:pix:{gift.recipient_key_hash}"]
    assert "terminal:t-9" not in entity_keys(tx, RULES.entities, KEY)  # not tracked by default
    only_ip = RULES.entities.model_copy(update={"tracked": frozenset({BlockedEntityType.IP})})
    assert entity_keys(tx, only_ip, KEY) == []  # untracked entities get no windows


def test_entity_keys_come_in_the_declared_order_of_their_types() -> None:
    """The order of the entity windows an event is counted in, the same on every worker."""
    everything = RULES.entities.model_copy(update={"tracked": frozenset(ENTITY_TYPES)})
    declared = [entity.value for entity in BlockedEntityType]
    events = [
        factories.transaction(card_id="c", account_id="a", terminal_id="t", ip=IP),
        factories.login(ip=IP),
        factories.gift(ip=IP, device_id="d"),
    ]
    for event in events:
        types = [key.split(":")[0] for key in entity_keys(event, everything, KEY)]
        assert len(types) >= 2 and types == sorted(types, key=declared.index)


def _card_use(user: str, minute: int) -> TransactionEvent:
    return factories.transaction(
        user_id=user, card_id="card-x", occurred_at=factories.NOW - timedelta(minutes=60 - minute)
    )


def test_a_card_used_by_a_fourth_user_in_a_day_is_blocked_repeat_use_is_not() -> None:
    state = VelocityState()
    uses = [_card_use(user, n) for n, user in enumerate(["u1", "u2", "u1", "u3", "u3", "u4", "u5"])]
    placed = [
        [
            (b.entity_type, b.entity_id, b.reason, b.expires_at - b.created_at)
            for b in record_entity(
                state,
                use,
                BlockedEntityType.CARD,
                "card-x",
                RULES.entities,
                RULES.gift.consecutive_failures,
                RULES.velocity.windows,
                RULES.velocity.horizon_s,
            )
        ]
        for use in uses
    ]
    block = (BlockedEntityType.CARD, "card-x", "CARD_SHARED_BY_USERS", timedelta(days=1))
    assert placed == [[]] * 5 + [[block]] + [[]]
    at_ms = int(uses[-1].occurred_at.timestamp() * 1000)
    stats = state.window("tx", at_ms, 86400)
    assert (stats.count, stats.counterparties) == (7, 5)
    assert stats.amount_cents == sum(use.amount_cents for use in uses)


def test_the_use_that_crosses_a_limit_is_stopped_where_the_entity_is_counted_first() -> None:
    """A worker holding the card's state counts each use before deciding it, so the fourth
    user's use is stopped by the block it places, as a rate limit refuses the attempt over
    its maximum; the card is not counted again after the decision."""
    replay = Replay(RULES, KEY, ListView(), learn=False)
    uses = [_card_use(user, n) for n, user in enumerate(["u1", "u2", "u3", "u4", "u5"])]
    effects = [replay.step(use) for use in uses]
    assert [e.decision.decision for e in effects] == [Verdict.ALLOW] * 3 + [Verdict.REVIEW] * 2
    assert "BLACKLIST_ENTITY_BLOCK" in [r.code for r in effects[3].decision.reasons]
    assert [[b.reason for b in e.blocks] for e in effects] == [[]] * 3 + [
        ["CARD_SHARED_BY_USERS"],
        [],
    ]
    assert not any("card:card-x" in e.counts_at for e in effects)


def test_an_entity_counted_elsewhere_blocks_from_the_next_use() -> None:
    """Where another worker holds the card's state, the use is counted there after its
    decision: the fourth user's use passes and its block stops the fifth."""
    views = Views(BlockView(), ListView(), AccountView(), NetworkIndex(), KEY)
    card = VelocityState()
    verdicts = []
    for n, user in enumerate(["u1", "u2", "u3", "u4", "u5"]):
        use = _card_use(user, n)
        at = use.occurred_at
        effects = decide_step(
            VelocityState(), use, RULES, views, lambda *_: Scoring(), at.timestamp(), at
        )
        verdicts.append(effects.decision.decision)
        assert "card:card-x" in effects.counts_at
        for block in count_step(card, "card:card-x", use, RULES):
            views.blocks.apply(block)
    assert verdicts == [Verdict.ALLOW] * 4 + [Verdict.REVIEW]


def test_limits_only_on_entities_seen_across_subjects() -> None:
    with pytest.raises(ValueError, match="user is a subject"):
        Entities.model_validate({"tracked": ["ip", "user"]})


def test_the_eleventh_wrong_code_from_one_ip_blocks_it_once() -> None:
    state = VelocityState()
    events = [_wrong_code(n) for n in range(13)]
    placed = _count(state, events)
    assert placed == [[]] * 10 + [["IP_REDEMPTION_RATE_LIMIT"]] + [[]] * 2
    assert (
        state.window("redeem_failed", int(events[-1].occurred_at.timestamp() * 1000), 3600).count
        == 13
    )


def test_wrong_codes_sprayed_over_a_third_gift_from_one_ip_block_it() -> None:
    state = VelocityState()
    placed = _count(state, [_wrong_code(n, gifts=4) for n in range(4)])
    assert placed == [[], [], ["IP_CODE_SPRAYING"], []]


def test_wrong_codes_on_a_second_gift_from_one_device_block_it() -> None:
    state = VelocityState()
    at = factories.NOW - timedelta(minutes=30)
    attempts = [
        factories.redemption(
            gift, False, device_id="dev-spray", occurred_at=at + timedelta(seconds=s)
        )
        for s, gift in enumerate(["g-a", "g-b"])
    ]
    placed = [
        [
            b.reason
            for b in record_entity(
                state,
                attempt,
                BlockedEntityType.DEVICE,
                "dev-spray",
                RULES.entities,
                RULES.gift.consecutive_failures,
                RULES.velocity.windows,
                RULES.velocity.horizon_s,
            )
        ]
        for attempt in attempts
    ]
    assert placed == [[], ["DEVICE_CODE_SPRAYING"]]


def test_the_shipped_limits_on_wrong_codes_across_gifts_stop_redemptions_only() -> None:
    """The code-spraying limits' reasons are those the block view holds to redemptions."""
    spraying = {
        limit.reason
        for limit in RULES.entities.limits
        if limit.metric == "redeem_failed" and limit.measure == "counterparties"
    }
    assert spraying == CODE_SPRAYING
    assert CODE_SPRAYING <= REDEMPTION_ONLY_REASONS


def test_a_redelivered_event_gets_back_the_block_it_placed_and_nothing_else() -> None:
    state = VelocityState()
    events = [_wrong_code(n) for n in range(12)]
    _count(state, events)
    assert _count(state, [events[10]]) == [["IP_REDEMPTION_RATE_LIMIT"]]
    assert _count(state, [events[4], events[11]]) == [[], []]
    assert (
        state.window("redeem_failed", int(events[-1].occurred_at.timestamp() * 1000), 3600).count
        == 12
    )


def test_block_view_answers_for_entities_until_expiry() -> None:
    state = VelocityState()
    events = [_wrong_code(n) for n in range(11)]
    view = BlockView()
    for event in events:
        for block in record_entity(
            state,
            event,
            BlockedEntityType.IP,
            "h1",
            RULES.entities,
            RULES.gift.consecutive_failures,
            RULES.velocity.windows,
            86400,
        ):
            view.apply(block)
    at = int(events[-1].occurred_at.timestamp() * 1000)
    assert view.blocked(["ip:h1"], at, False)
    assert view.blocked(["device:x", "ip:h1"], at + 3_599_000, True)
    assert not view.blocked(["ip:h1"], at + 3_600_000, True)
    assert not view.blocked(["ip:other"], at, True)


def test_a_blocked_ip_blocks_the_action_not_its_subject() -> None:
    redemption = _wrong_code(99)
    outcome = decide_event(VelocityState(), redemption, RULES, entity_blocked=True)
    assert outcome.assessment.verdict is Verdict.BLOCK
    assert [r.code for r in outcome.assessment.reasons] == ["GIFT_ENTITY_BLOCKED"]
    assert outcome.blocks == []  # a shared IP says nothing about this gift
    payment = factories.transaction(network_flags=[], occurred_at=factories.NOW)
    tx = decide_event(VelocityState(), payment, RULES, entity_blocked=True).assessment
    assert "BLACKLIST_ENTITY_BLOCK" in [r.code for r in tx.reasons]
    assert tx.verdict is Verdict.REVIEW


def test_out_of_order_arrival_still_blocks_when_the_limit_is_crossed() -> None:
    """Observations reach the IP after their own subjects' decisions, in any order: the limit
    is checked over the window ending at the newest one seen."""
    state = VelocityState()
    events = [_wrong_code(n) for n in range(11)]
    arrival = events[5:] + events[:5][::-1]  # the last to arrive is early in time
    placed = _count(state, arrival)
    assert placed == [[]] * 10 + [["IP_REDEMPTION_RATE_LIMIT"]]


def test_a_shop_paid_by_many_customers_in_an_hour_blocks_none_of_them() -> None:
    """Many senders to one PIX key is a busy shop as often as a money mule: the shipped
    limits leave it alone (docs/known-limits.md)."""
    replay = Replay(RULES, KEY, ListView(), learn=False)
    shop = factories.sha("shop-pix-key")
    lunch = factories.NOW - timedelta(hours=2)
    outcomes = []
    for n in range(60):
        customer = {
            "user_id": f"customer-{n}",
            "device_id": f"phone-{n}",
            "ip": f"198.51.100.{n + 1}",
            "network_flags": [],
        }
        earlier = lunch - timedelta(days=1, minutes=n)
        replay.decide(factories.transaction(occurred_at=earlier, amount_cents=4_000, **customer))
        at = lunch + timedelta(minutes=n)
        paid = factories.transaction(
            occurred_at=at, amount_cents=3_000, counterparty_pix_key_hash=shop, **customer
        )
        outcomes.append(replay.decide(paid))
    assert {o.assessment.verdict for o in outcomes} == {Verdict.ALLOW}
