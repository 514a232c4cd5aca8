"""Entities across subjects: keys without raw IPs, exact counts, limits placing blocks once."""

from __future__ import annotations

from datetime import timedelta

from config.rules import load_rules
from engine.decide import decide_event
from engine.entities import BlockView, entity_keys, hashed_ip, record_entity
from engine.velocity import VelocityState
from schemas.models import BlockedEntityType, GiftEvent, Verdict
from tests import factories

RULES = load_rules()
KEY = b"test-key"
IP = "198.51.100.23"


def _wrong_code(n: int, ip: str = IP) -> GiftEvent:
    return factories.gift(
        event_type="redeem_attempt",
        gift_id=f"g-{n}",
        amount_cents=None,
        code_correct=False,
        ip=ip,
        device_id=None,
        occurred_at=factories.NOW - timedelta(minutes=30) + timedelta(seconds=n),
    )


def _count(state: VelocityState, events: list[GiftEvent]) -> list[list[str]]:
    return [
        [
            b.reason
            for b in record_entity(
                state,
                event,
                BlockedEntityType.IP,
                hashed_ip(IP, KEY),
                RULES.entities,
                RULES.velocity.windows,
                RULES.velocity.horizon_s,
            )
        ]
        for event in events
    ]


def test_entity_keys_hash_ips_with_the_configured_key() -> None:
    event = factories.gift(ip=IP, device_id="dev-1")
    keys = entity_keys(event, RULES.entities, KEY)
    assert sorted(keys) == sorted([f"ip:{hashed_ip(IP, KEY)}", "device:dev-1"])
    assert IP not in "".join(keys)
    assert entity_keys(event, RULES.entities, b"other-key") != keys
    assert entity_keys(factories.gift(ip=None, device_id=None), RULES.entities, KEY) == []


def test_the_eleventh_wrong_code_from_one_ip_blocks_it_once() -> None:
    state = VelocityState()
    events = [_wrong_code(n) for n in range(13)]
    placed = _count(state, events)
    assert placed == [[]] * 10 + [["IP_REDEMPTION_RATE_LIMIT"]] + [[]] * 2
    assert (
        state.window("redeem_failed", int(events[-1].occurred_at.timestamp() * 1000), 3600).count
        == 13
    )


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
            state, event, BlockedEntityType.IP, "h1", RULES.entities, RULES.velocity.windows, 86400
        ):
            view.apply(block)
    at = int(events[-1].occurred_at.timestamp() * 1000)
    assert view.blocked(["ip:h1"], at) and view.blocked(["device:x", "ip:h1"], at + 3_599_000)
    assert not view.blocked(["ip:h1"], at + 3_600_000)
    assert not view.blocked(["ip:other"], at)


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
