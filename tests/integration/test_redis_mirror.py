"""Active fraud blocks are mirrored to a real Redis, with their TTL, through outages."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from schemas.models import Decision, FraudBlock, SubjectType
from sinks.redis_blocks import RedisBlockMirror, block_key
from sinks.redis_counters import RedisCounterMirror, counter_key
from streams.topics import Topics
from tests import factories
from tests.integration.conftest import RedisServer
from tests.integration.helpers import collect, send_events

pytestmark = pytest.mark.integration


def _block(entity: str, expires_in: timedelta, reason: str = "R") -> FraudBlock:
    now = datetime.now(UTC)
    return FraudBlock(
        entity_type=SubjectType.USER,
        entity_id=entity,
        reason=reason,
        event_id=f"e-{entity}-{reason}",
        created_at=now,
        expires_at=now + expires_in,
    )


def test_mirror_sets_ttl_skips_expired_and_never_shortens(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis as AsyncRedis

    async def scenario() -> None:
        client = AsyncRedis.from_url(redis_server.url)
        mirror = RedisBlockMirror(client, "unit")
        now_ms = int(time.time() * 1000)
        long_block = _block("u1", timedelta(hours=2), "LONG")
        assert await mirror.write([long_block, _block("u2", timedelta(seconds=-1))], now_ms) == 1
        await mirror.write([_block("u1", timedelta(minutes=5), "SHORT")], now_ms)  # older/shorter
        stored = await mirror.active_block("user", "u1")
        assert stored is not None and stored["reason"] == "LONG"
        assert await mirror.active_block("user", "u2") is None
        ttl = await client.pttl(block_key("unit", "user", "u1"))
        assert 2 * 3_600_000 - 60_000 < ttl <= 2 * 3_600_000
        await client.aclose()

    asyncio.run(scenario())


def _wait_for_key(client: Redis, key: str, timeout_s: float = 60) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = client.get(key)
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{key} never appeared in Redis")


def test_worker_mirrors_blocks_and_survives_a_redis_outage(
    engine_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    outage = RedisServer(tmp_path_factory.mktemp("redis-outage")).start()
    settings = engine_settings.model_copy(update={"redis_url": outage.url})
    topics = Topics(settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("w") / "worker.log").start()
    client = Redis(port=outage.port)
    try:
        first = factories.gift(
            giver_user_id="mirror-1",
            amount_cents=150_000,
            occurred_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        asyncio.run(send_events(settings.bootstrap_servers, topics, [first]))
        stored = json.loads(
            _wait_for_key(client, block_key(settings.topic_prefix, "user", "mirror-1"))
        )
        assert stored["reason"] == "GIFT_AMOUNT_OVER_LIMIT"
        ttl = client.pttl(block_key(settings.topic_prefix, "user", "mirror-1"))
        assert 86_400_000 - 120_000 < ttl <= 86_400_000

        outage.stop()  # Redis goes away; a new block is decided meanwhile
        second = factories.gift(
            giver_user_id="mirror-2",
            amount_cents=150_000,
            occurred_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        asyncio.run(send_events(settings.bootstrap_servers, topics, [second]))
        asyncio.run(collect(settings.bootstrap_servers, topics, {second.event_id}))
        time.sleep(2)
        outage.start()  # same port, empty: the pending batch must still land
        client = Redis(port=outage.port)
        stored = json.loads(
            _wait_for_key(client, block_key(settings.topic_prefix, "user", "mirror-2"))
        )
        assert stored["event_id"] == second.event_id
        assert worker.alive
    finally:
        worker.stop()
        client.close()
        outage.stop()


def _decision(subject: str, at: datetime, features: dict[str, int]) -> Decision:
    return Decision(
        event_id=f"e-{subject}-{at.timestamp()}",
        event_kind="gift",
        event_type="gift_created",
        subject_type="user",
        subject_id=subject,
        score=0,
        band="LOW",
        decision="ALLOW",
        features=features,
        rule_version="test",
        event_occurred_at=at,
        decided_at=at,
        latency_ms=1,
    )


def test_counters_expire_with_their_window_and_never_roll_back(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis as AsyncRedis

    rules = load_rules()
    feature = "gift_created.count.24h"

    async def scenario() -> None:
        client = AsyncRedis.from_url(redis_server.url)
        mirror = RedisCounterMirror(client, "unit")
        now = datetime.now(UTC)
        newer = _decision("c1", now - timedelta(minutes=1), {feature: 3, "not.mirrored.1h": 9})
        older = _decision("c1", now - timedelta(minutes=5), {feature: 2})
        stale = _decision("c2", now - timedelta(days=2), {feature: 1})  # window long passed
        now_ms = int(now.timestamp() * 1000)
        mirrored, windows = rules.sync.mirrored_counters, rules.velocity.windows
        assert await mirror.write([newer, stale], mirrored, windows, now_ms) == 1
        assert await mirror.write([older], mirrored, windows, now_ms) == 1  # re-delivery
        stored = await mirror.counter("user", "c1", feature)
        assert stored == {"value": 3, "as_of_ms": int(newer.event_occurred_at.timestamp() * 1000)}
        assert await mirror.counter("user", "c1", "not.mirrored.1h") is None
        assert await mirror.counter("user", "c2", feature) is None
        ttl = await client.pttl(counter_key("unit", "user", "c1", feature))
        assert 86_400_000 - 120_000 < ttl <= 86_400_000 - 60_000
        await client.aclose()

    asyncio.run(scenario())


def test_worker_mirrors_rate_limit_counters(
    engine_settings: Settings, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = engine_settings.model_copy(update={"redis_url": redis_server.url})
    topics = Topics(settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("w") / "worker.log").start()
    client = Redis(port=redis_server.port)
    start = datetime.now(UTC) - timedelta(minutes=10)
    gifts = [
        factories.gift(giver_user_id="counted", occurred_at=start + timedelta(minutes=n))
        for n in range(3)
    ]
    try:
        asyncio.run(send_events(settings.bootstrap_servers, topics, gifts))
        key = counter_key(settings.topic_prefix, "user", "counted", "gift_created.count.24h")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = client.get(key)
            if raw is not None and json.loads(raw)["value"] == len(gifts):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"{key} never reached {len(gifts)}")
        amount = client.get(
            counter_key(settings.topic_prefix, "user", "counted", "gift_created.amount_cents.24h")
        )
        assert amount is not None
        assert json.loads(amount)["value"] == sum(g.amount_cents or 0 for g in gifts)
    finally:
        worker.stop()
        client.close()
