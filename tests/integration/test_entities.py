"""Entities across subjects on the real pipeline: the per-IP redemption rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from engine.entities import hashed_ip
from schemas.models import BlockedEntityType, FraudBlock, Verdict
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, read_giftpix_outputs, send_events

pytestmark = pytest.mark.integration
IP = "198.51.100.77"


def _redemption(n: int, at: datetime, correct: bool) -> factories.GiftEvent:
    return factories.gift(
        event_type="redeem_attempt",
        gift_id=f"gift-{n}",
        amount_cents=None,
        code_correct=correct,
        ip=IP,
        device_id=None,
        occurred_at=at,
    )


def _ip_blocks(settings: Settings, topics: Topics, timeout_s: float = 60) -> list[FraudBlock]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        blocks, _ = asyncio.run(read_giftpix_outputs(settings.bootstrap_servers, topics))
        found = [b for b in blocks if b.entity_type is BlockedEntityType.IP]
        if found:
            return found
    raise AssertionError("no IP block was placed")


def test_wrong_codes_from_one_ip_across_gifts_block_that_ip(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Each wrong code is on a different gift (a different subject and, mostly, partition):
    only the IP's own windows see them together. The 11th in an hour blocks the IP; the next
    redemption from it, even with the right code on a fresh gift, is blocked."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    limit = next(lim for lim in load_rules().entities.limits if lim.entity == "ip")
    start = datetime.now(UTC) - timedelta(minutes=20)
    wrong = [
        _redemption(n, start + timedelta(seconds=n), correct=False)
        for n in range(limit.max_count + 1)
    ]
    start_worker()
    asyncio.run(send_events(bootstrap, topics, wrong))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in wrong}))

    (block,) = _ip_blocks(engine_settings, topics)
    secret = engine_settings.pii_hash_key.get_secret_value().encode()
    assert (block.entity_id, block.reason) == (hashed_ip(IP, secret), limit.reason)
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
    assert granted.decision is Verdict.ALLOW
