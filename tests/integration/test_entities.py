"""Entities across subjects on the real pipeline: the per-IP redemption rate limit, a
device's consecutive wrong codes, a card shared by users, a refund policy that needs the
giver's history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from engine.entities import keyed_id
from schemas.models import BlockedEntityType, FraudBlock, Verdict
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, read_giftpix_outputs, send_events

pytestmark = pytest.mark.integration
IP = "198.51.100.77"


def _redemption(n: int, at: datetime, correct: bool) -> factories.GiftEvent:
    return factories.redemption(f"gift-{n}", correct, ip=IP, device_id=None, occurred_at=at)


def _entity_blocks(
    settings: Settings,
    topics: Topics,
    entity: BlockedEntityType,
    timeout_s: float = 60,
    count: int = 1,
) -> list[FraudBlock]:
    """The blocks placed on ``entity``s, once there are at least ``count``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        blocks, _ = asyncio.run(read_giftpix_outputs(settings.bootstrap_servers, topics))
        found = [b for b in blocks if b.entity_type is entity]
        if len(found) >= count:
            return found
    raise AssertionError(f"fewer than {count} {entity.value} blocks were placed")


def test_wrong_codes_from_one_ip_across_gifts_block_that_ip(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Each wrong code is on a different gift (a different subject and, mostly, partition):
    only the IP's own windows see them together. The third gift's blocks the IP's
    redemptions (code spraying), the 11th in an hour the IP; the next redemption from it,
    even with the right code on a fresh gift, is blocked."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    limit = next(
        lim for lim in load_rules().entities.limits if lim.reason == "IP_REDEMPTION_RATE_LIMIT"
    )
    start = datetime.now(UTC) - timedelta(minutes=20)
    wrong = [
        _redemption(n, start + timedelta(seconds=n), correct=False) for n in range(limit.max + 1)
    ]
    start_worker()
    asyncio.run(send_events(bootstrap, topics, wrong))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in wrong}))

    spraying, block = sorted(
        _entity_blocks(engine_settings, topics, BlockedEntityType.IP, count=2),
        key=lambda b: b.reason != "IP_CODE_SPRAYING",
    )
    secret = engine_settings.pii_hash_key.get_secret_value().encode()
    assert (spraying.entity_id, spraying.reason) == (keyed_id(IP, secret), "IP_CODE_SPRAYING")
    assert (block.entity_id, block.reason) == (keyed_id(IP, secret), limit.reason)
    assert block.event_id in {e.event_id for e in wrong}  # placed once, by whichever came 11th
    assert block.expires_at - block.created_at == timedelta(seconds=limit.block_seconds)

    time.sleep(1)  # every worker follows the fraud-blocks topic
    fresh = _redemption(999, datetime.now(UTC) - timedelta(seconds=5), correct=True)
    asyncio.run(send_events(bootstrap, topics, [fresh]))
    out = asyncio.run(collect(bootstrap, topics, {fresh.event_id}))
    decision = next(d for _, d in out.decisions if d.event_id == fresh.event_id)
    assert decision.decision is Verdict.BLOCK
    assert [r.code for r in decision.reasons] == ["GIFT_ENTITY_BLOCKED"]
    assert IP.encode() not in b"".join(r.value for r, _ in out.decisions)


def test_consecutive_wrong_codes_from_one_device_block_its_redemptions_only(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Seed 5.2 "falhas consecutivas": wrong codes on different gifts (subjects, mostly
    partitions), each from an IP of its own; only the device's windows see the run. Its block
    stops the device's next redemption, not a gift it creates."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    run = load_rules().gift.consecutive_failures
    start = datetime.now(UTC) - timedelta(minutes=5)
    wrong = [
        factories.gift(
            event_type="redeem_attempt",
            gift_id=f"run-{n}",
            amount_cents=None,
            code_correct=False,
            ip=f"203.0.113.{n + 1}",
            device_id="dev-guesser",
            occurred_at=start + timedelta(seconds=n),
        )
        for n in range(run.failures)
    ]
    start_worker()
    asyncio.run(send_events(bootstrap, topics, wrong))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in wrong}))

    # The second gift's wrong code is code spraying; the run's last, consecutive failures.
    spraying, block = sorted(
        _entity_blocks(engine_settings, topics, BlockedEntityType.DEVICE, count=2),
        key=lambda b: b.reason != "DEVICE_CODE_SPRAYING",
    )
    assert (spraying.entity_id, spraying.reason) == ("dev-guesser", "DEVICE_CODE_SPRAYING")
    assert (block.entity_id, block.reason) == ("dev-guesser", "GIFT_CONSECUTIVE_FAILURES")
    assert block.expires_at - block.created_at == timedelta(seconds=run.block_seconds)

    time.sleep(1)  # every worker follows the fraud-blocks topic
    now = datetime.now(UTC)
    redemption = wrong[0].model_copy(
        update={
            "event_id": "run-right",
            "gift_id": "run-fresh",
            "code_correct": True,
            "occurred_at": now - timedelta(seconds=5),
        }
    )
    creation = factories.gift(device_id="dev-guesser", occurred_at=now - timedelta(seconds=4))
    asyncio.run(send_events(bootstrap, topics, [redemption, creation]))
    out = asyncio.run(collect(bootstrap, topics, {redemption.event_id, creation.event_id}))
    by_id = {d.event_id: d for _, d in out.decisions}
    assert by_id[redemption.event_id].decision is Verdict.BLOCK
    assert [r.code for r in by_id[redemption.event_id].reasons] == ["GIFT_ENTITY_BLOCKED"]
    assert by_id[creation.event_id].decision is Verdict.ALLOW


def test_a_redeemed_gift_is_not_refunded(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The redemption is decided with the gift; its giver's state learns of it, so the
    giver's later refund request for that gift is blocked, another gift's is not."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    at = datetime.now(UTC) - timedelta(minutes=5)
    redeemed = factories.gift(
        event_type="gift_redeemed", gift_id="used", giver_user_id="giver-r", occurred_at=at
    )
    created = [
        factories.gift(
            gift_id=gift_id, giver_user_id="giver-r", occurred_at=at - timedelta(hours=1)
        )
        for gift_id in ("used", "unused")
    ]
    start_worker()
    asyncio.run(send_events(bootstrap, topics, [*created, redeemed]))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in (*created, redeemed)}))
    time.sleep(1)  # the giver's partition learns of it right after the gift's decision
    refunds = [
        factories.gift(
            event_type="refund_requested",
            gift_id=gift_id,
            giver_user_id="giver-r",
            amount_cents=5_000,
            occurred_at=at + timedelta(minutes=n + 1),
        )
        for n, gift_id in enumerate(("used", "unused"))
    ]
    asyncio.run(send_events(bootstrap, topics, refunds))
    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in refunds}))
    by_id = {d.event_id: d for _, d in out.decisions}
    refused, granted = (by_id[e.event_id] for e in refunds)
    assert refused.decision is Verdict.BLOCK
    assert [r.code for r in refused.reasons] == ["GIFT_REFUND_AFTER_REDEMPTION"]
    # Not refused (a second refund within the hour is reviewed: GIFT_REFUND_BURST).
    assert granted.decision is not Verdict.BLOCK
    assert "GIFT_REFUND_AFTER_REDEMPTION" not in [r.code for r in granted.reasons]


def test_a_card_used_by_too_many_users_is_blocked_for_its_next_payment(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Each user is a different subject; only the card's own windows see them together."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    limit = next(lim for lim in load_rules().entities.limits if lim.entity == "card")
    start = datetime.now(UTC) - timedelta(minutes=30)
    uses = [
        factories.transaction(
            user_id=f"holder-{n}",
            card_id="card-shared",
            network_flags=[],
            occurred_at=start + timedelta(minutes=n),
        )
        for n in range(limit.max + 1)
    ]
    start_worker(node=1)
    start_worker(node=2)
    asyncio.run(send_events(bootstrap, topics, uses))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in uses}))

    (block,) = _entity_blocks(engine_settings, topics, BlockedEntityType.CARD)
    assert (block.entity_id, block.reason) == ("card-shared", "CARD_SHARED_BY_USERS")
    assert block.event_id in {e.event_id for e in uses}  # by whichever reached the card last

    time.sleep(1)  # every worker follows the fraud-blocks topic
    later = [
        factories.transaction(
            user_id=f"holder-{n}",
            card_id=card,
            network_flags=[],
            occurred_at=datetime.now(UTC) - timedelta(seconds=5),
        )
        for n, card in ((0, "card-shared"), (0, "card-own"))
    ]
    asyncio.run(send_events(bootstrap, topics, later))
    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in later}))
    by_id = {d.event_id: d for _, d in out.decisions}
    shared, own = (by_id[e.event_id] for e in later)
    assert "BLACKLIST_ENTITY_BLOCK" in [r.code for r in shared.reasons]
    assert "BLACKLIST_ENTITY_BLOCK" not in [r.code for r in own.reasons]
