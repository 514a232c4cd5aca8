"""The synchronous path: ``atalaia api`` against a real broker, worker and Redis."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from engine.entities import keyed_id
from schemas.models import BlockedEntityType, FraudBlock, InputEvent
from sinks.redis_blocks import RedisBlockMirror
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, scrape_metrics, send_events

pytestmark = pytest.mark.integration


def _post(settings: Settings, kind: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.api_port}/v1/decide/{kind}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _decide(settings: Settings, event: InputEvent) -> dict[str, Any]:
    kind = {"TransactionEvent": "transaction", "LoginEvent": "login", "GiftEvent": "gift"}
    status, body = _post(settings, kind[type(event).__name__], event.model_dump_json().encode())
    assert status == 200, body
    return body


def test_valid_events_get_the_engines_decision_within_the_bound(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    topics = Topics(api_settings.topic_prefix)
    start_worker()
    warmup = factories.gift()
    asyncio.run(send_events(api_settings.bootstrap_servers, topics, [warmup]))
    asyncio.run(collect(api_settings.bootstrap_servers, topics, {warmup.event_id}))
    start_api()

    over_limit = factories.gift(amount_cents=150_000)
    ordinary = factories.transaction(network_flags=[])
    answers = [_decide(api_settings, event) for event in (over_limit, ordinary)]

    bound = load_rules().sync.timeout_ms
    for event, answer in zip((over_limit, ordinary), answers, strict=True):
        assert answer["source"] == "engine", answer
        assert answer["event_id"] == event.event_id
        assert answer["answered_in_ms"] <= bound
    assert answers[0]["decision"] == "BLOCK"
    assert [r["code"] for r in answers[0]["reasons"]] == ["GIFT_AMOUNT_OVER_LIMIT"]
    assert answers[0]["user_message"] == load_rules().gift.actions.blocked_message
    assert answers[1]["decision"] == "ALLOW"
    assert answers[1]["rule_version"] == load_rules().version
    metrics = scrape_metrics(api_settings.api_port)
    assert metrics["atalaia_sync_answers_total{source=engine,verdict=BLOCK}"] == 1
    assert metrics["atalaia_sync_answers_total{source=engine,verdict=ALLOW}"] == 1


def test_bad_requests_get_a_clear_4xx_and_publish_nothing(
    api_settings: Settings, start_api: Callable[[], WorkerProcess]
) -> None:
    start_api()
    negative = json.loads(factories.gift().model_dump_json()) | {"amount_cents": -1}
    cases = [
        ("gift", json.dumps(negative).encode(), 422, "ValidationError"),
        ("transaction", b"{not json", 422, "MalformedPayload"),
        ("login", factories.transaction().model_dump_json().encode(), 422, "ValidationError"),
        ("refund", b"{}", 404, "UnknownEventKind"),
    ]
    for kind, body, status, error in cases:
        got_status, answer = _post(api_settings, kind, body)
        assert (got_status, answer["error"]) == (status, error), answer
        assert answer["detail"] and "\n" not in answer["detail"]
    metrics = scrape_metrics(api_settings.api_port)  # by route pattern, never by path
    assert metrics["atalaia_api_requests_total{route=/v1/decide/{kind},status=422}"] == 3
    assert metrics["atalaia_api_requests_total{route=/v1/decide/{kind},status=404}"] == 1
    assert metrics["atalaia_api_request_seconds_count{route=/v1/decide/{kind}}"] == 4
    assert not any("refund" in name for name in metrics)
    topics = Topics(api_settings.topic_prefix)
    published = asyncio.run(collect(api_settings.bootstrap_servers, topics, None, idle_timeout_s=1))
    assert published.decisions == [] and published.dead_letters == []


def test_no_engine_in_time_applies_the_policy_then_the_decision_still_comes(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    """No worker running: each kind gets its configured policy; an active block in Redis on
    the subject or its IP turns a fail-open into BLOCK. Once a worker runs, the events are
    decided all the same."""
    blocked_user = f"blocked-{time.monotonic_ns()}"
    blocked_ip = "192.0.2.99"
    now = datetime.now(UTC)
    secret = api_settings.pii_hash_key.get_secret_value().encode()
    blocks = [
        FraudBlock(
            entity_type=entity_type,
            entity_id=entity_id,
            reason=reason,
            event_id="cause",
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
        for entity_type, entity_id, reason in (
            (BlockedEntityType.USER, blocked_user, "GIFT_DAILY_AMOUNT_EXCEEDED"),
            (BlockedEntityType.IP, keyed_id(blocked_ip, secret), "IP_REDEMPTION_RATE_LIMIT"),
        )
    ]

    async def place_block() -> None:
        client = Redis.from_url(str(api_settings.redis_url))
        mirror = RedisBlockMirror(client, api_settings.topic_prefix)
        await mirror.write(blocks, int(now.timestamp() * 1000))
        await client.aclose()

    asyncio.run(place_block())
    start_api()
    payment = factories.transaction()
    login = factories.login()
    blocked_login = factories.login(user_id=blocked_user)
    from_blocked_ip = factories.login(ip=blocked_ip)
    events = (payment, login, blocked_login, from_blocked_ip)

    answers = {e.event_id: _decide(api_settings, e) for e in events}

    policy = load_rules().sync
    expected = {
        payment.event_id: ("BLOCK", ["SYNC_TIMEOUT_FAIL_CLOSED"]),
        login.event_id: ("ALLOW", ["SYNC_TIMEOUT_FAIL_OPEN"]),
        blocked_login.event_id: ("BLOCK", ["SYNC_TIMEOUT_FAIL_OPEN", "SYNC_ACTIVE_BLOCK"]),
        from_blocked_ip.event_id: ("BLOCK", ["SYNC_TIMEOUT_FAIL_OPEN", "SYNC_ACTIVE_BLOCK"]),
    }
    for event_id, (verdict, codes) in expected.items():
        answer = answers[event_id]
        assert answer["source"] == "timeout_policy"
        assert (answer["decision"], [r["code"] for r in answer["reasons"]]) == (verdict, codes)
        assert policy.timeout_ms <= answer["answered_in_ms"] < policy.timeout_ms + 1000
    start_worker()
    topics = Topics(api_settings.topic_prefix)
    out = asyncio.run(collect(api_settings.bootstrap_servers, topics, set(answers)))
    assert out.decided_ids() == set(answers)
