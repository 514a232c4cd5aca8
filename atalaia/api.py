"""``atalaia api``: the synchronous path. POST one event, get its decision within a bound.

``POST /v1/decide/{transaction|login|gift}`` with the event as JSON (the input contract):

- invalid: 422 with the error class and a one-line detail; nothing is published;
- valid: published to its input topic keyed by subject (decided in place by the owning
  worker), then the engine's decision is awaited up to ``sync.timeout_ms`` of the rules in
  force; 200 with ``"source": "engine"`` and the decision;
- late (or broker unreachable): 200 with ``"source": "timeout_policy"``, the configured
  fail-open/fail-closed verdict and why, BLOCK whatever the policy when Redis holds an active
  block on the subject. The engine's own decision is still published when it comes.

Binds 127.0.0.1 by default (``api_host``). Rules follow the config topic like the workers'.
The same server carries the admin API (``atalaia.admin_api``) and the process's metrics and
health checks (``GET /metrics``, ``/healthz``, ``/readyz``: ``streams.ops``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atalaia.admin_api import AdminApi
from atalaia.analytics import run_query
from config.rules import LiveRules, RuleSet
from config.settings import Settings
from engine.admission import admit, subject_of
from engine.entities import block_stops, entity_keys, parse_entity_key
from engine.late_answer import ActiveBlock, late_answer
from schemas.codec import DecodeError, WireCodec
from schemas.models import EVENT_KIND_OF, EventKind, InputEvent
from sinks.key_store import SubjectKeyStore
from sinks.redis_blocks import RedisBlockMirror
from streams.admin import ensure_topics
from streams.admin_state import AdminState
from streams.decision_waiter import DecisionWaiter
from streams.live_config import follow_rules, latest_rules
from streams.log_limits import limit_client_repeats
from streams.logs import configure_logging
from streams.metrics import API_REQUESTS, API_SECONDS, SYNC_ANSWERS, child_of
from streams.ops import Check, Readiness, aiohttp_routes, refresh_forever, serve_ops
from streams.topics import Topics

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class DecideService:
    """The handler's dependencies; clients are created on start, inside the event loop."""

    producer: AIOKafkaProducer
    waiter: DecisionWaiter
    blocks: RedisBlockMirror | None

    def __init__(
        self, settings: Settings, rules: RuleSet, clock: Callable[[], datetime] = _now
    ) -> None:
        self.settings, self.clock = settings, clock
        self.topics = Topics(settings.topic_prefix)
        self.codec = WireCodec()
        self.live = LiveRules(rules)
        self.hash_key = settings.pii_hash_key.get_secret_value().encode()
        self.contracts = {
            EVENT_KIND_OF[model]: model for model in self.topics.input_models().values()
        }
        self._follower: asyncio.Task[None] | None = None
        self.started = False

    def check(self) -> Check:
        """Readiness: publishing to the engine and reading its decisions."""
        if not self.started:
            return Check(False, "starting the producer and the decision reader")
        return Check(True, f"rules {self.live.current.version}")

    async def start(self, _app: web.Application | None = None) -> None:
        await ensure_topics(self.settings)
        start = await latest_rules(self.settings, self.live.current)
        self.live = LiveRules(start.rules)
        settings = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, linger_ms=0, acks=1
        )
        self.waiter = DecisionWaiter(settings.bootstrap_servers, self.topics.decisions, self.codec)
        self.blocks = (
            RedisBlockMirror(Redis.from_url(settings.redis_url), settings.topic_prefix)
            if settings.redis_url
            else None
        )
        self._follower = asyncio.create_task(
            follow_rules(
                self.settings.bootstrap_servers,
                self.topics,
                self.live,
                start.positions,
                _ignore_rejected,
            )
        )
        await self.waiter.start()
        await self.producer.start()
        self.started = True

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self.waiter.stop()
        await self.producer.stop()
        if self.blocks is not None:
            await self.blocks.client.aclose()

    async def decide(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        try:
            kind = EventKind(request.match_info["kind"])
        except ValueError:
            return _error(
                404, "UnknownEventKind", f"no such event kind: {request.match_info['kind']}"
            )
        rules = self.live.current
        body = await request.read()
        try:
            contract = (self.contracts[kind],)
            event = admit(self.codec, body, contract, self.clock(), rules.validation)
        except DecodeError as exc:
            return _error(422, exc.error_class, exc.message)
        subject = subject_of(event)
        timeout_s = rules.sync.timeout_ms / 1000
        pending = self.waiter.expect(event.event_id)
        try:
            await asyncio.wait_for(self._publish(event, subject.key), timeout_s)
            remaining = max(0.0, timeout_s - (time.monotonic() - started))
            decision = await asyncio.wait_for(asyncio.shield(pending), remaining)
        except (TimeoutError, KafkaError) as exc:
            cause = (
                f"no decision within {rules.sync.timeout_ms} ms"
                if isinstance(exc, TimeoutError)
                else f"engine unreachable ({type(exc).__name__})"
            )
            return await self._late(event, rules, cause, started)
        finally:
            self.waiter.forget(event.event_id, pending)
        payload = {"source": ENGINE, **decision.model_dump(mode="json")}
        payload["answered_in_ms"] = _elapsed_ms(started)
        child_of(SYNC_ANSWERS, ENGINE, decision.decision.value).inc()
        return web.json_response(payload)

    async def _publish(self, event: InputEvent, key: str) -> None:
        topic = self.topics.input_topic_for(type(event))
        await self.producer.send_and_wait(topic, self.codec.encode(event), key=key.encode())

    async def _active_block(self, event: InputEvent, rules: RuleSet) -> ActiveBlock | None:
        """A block in the Redis mirror on the event's subject, IP or device that stops it, if
        any (a redeemer's block for consecutive wrong codes stops only its redemptions)."""
        if self.blocks is None:
            return None
        subject = subject_of(event)
        named = [parse_entity_key(key) for key in entity_keys(event, rules.entities, self.hash_key)]
        entities = [(subject.type.value, subject.id)] + [
            (kind.value, entity_id) for kind, entity_id in filter(None, named)
        ]
        try:
            for kind, entity_id in entities:
                found = await self.blocks.active_block(kind, entity_id)
                if found is not None and block_stops(str(found["reason"]), event):
                    return ActiveBlock(str(found["reason"]), int(str(found["expires_at_ms"])))
        except RedisError as exc:  # unknown: the policy alone decides
            log.warning("block mirror unreadable: %s", type(exc).__name__)
        return None

    async def _late(
        self, event: InputEvent, rules: RuleSet, cause: str, started: float
    ) -> web.Response:
        answer = late_answer(event, rules.sync, await self._active_block(event, rules), cause)
        child_of(SYNC_ANSWERS, TIMEOUT_POLICY, answer.verdict.value).inc()
        return web.json_response(
            {
                "source": TIMEOUT_POLICY,
                "event_id": event.event_id,
                "decision": answer.verdict.value,
                "policy": answer.policy,
                "reasons": [reason.model_dump() for reason in answer.reasons],
                "rule_version": rules.version,
                "answered_in_ms": _elapsed_ms(started),
            }
        )


async def _ignore_rejected(_record: Any, _error: str) -> None:
    """The workers dead-letter rejected rules; the API only keeps the rules in force."""


ENGINE, TIMEOUT_POLICY = "engine", "timeout_policy"
"""Who answered a synchronous call: the engine's decision, or the policy when it was late."""


@web.middleware
async def measured(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time every request by its route's pattern (never its path: ids would make
    labels) and status."""
    started = time.monotonic()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        child_of(API_REQUESTS, route, str(status)).inc()
        child_of(API_SECONDS, route).observe(time.monotonic() - started)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest request body: a list import (an OFAC SDN XML is about 20 MB)."""


def build_api(service: DecideService) -> web.Application:
    """The decision endpoint and the admin API (``atalaia.admin_api``) on one server."""
    settings = service.settings
    store = AdminState(settings.bootstrap_servers, service.topics, service.hash_key)
    master = bytes.fromhex(settings.vault_master_key.get_secret_value())
    keys = SubjectKeyStore(settings.key_store_path, master)

    def query(sql: str, api_key: str | None) -> tuple[list[str], list[list[Any]]]:
        return run_query(settings, sql, open_store=False, api_key=api_key)

    admin = AdminApi(settings, store, lambda: service.live.current, keys, query=query)
    readiness = Readiness("api")
    readiness.check("engine", service.check)
    readiness.check("admin_state", store.check)

    refreshing: list[asyncio.Task[None]] = []

    async def start_store(_app: web.Application) -> None:
        if settings.metrics_port is not None:  # the same endpoints where the others serve them
            serve_ops(settings.metrics_host, settings.metrics_port, readiness)
            refreshing.append(asyncio.create_task(refresh_forever(readiness)))
        await store.start()

    async def stop_store(_app: web.Application) -> None:
        for task in refreshing:
            task.cancel()
        await store.stop()
        keys.close()

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[measured])
    app.router.add_post("/v1/decide/{kind}", service.decide)
    app.add_routes(aiohttp_routes(readiness))
    app.add_routes(admin.routes())
    app.on_startup.extend([service.start, start_store])
    app.on_cleanup.extend([stop_store, service.stop])
    return app


class MalformedRequestsInOneLine(logging.Filter):
    """aiohttp logs a request it cannot even parse (a 10 KB path, a bad header) with its
    traceback and the start of the offending bytes: it is answered 400 all the same, so one
    line naming the kind of error is enough, and nothing the client sent is repeated."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "malformed HTTP request refused with %d (%s)"
            record.args = (error.code, type(error).__name__)
            record.exc_info = None
        return True


def run_api(settings: Settings, rules: RuleSet) -> None:
    service = DecideService(settings, rules)
    configure_logging(settings, "api")
    limit_client_repeats(settings.log_repeat_interval_s)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestsInOneLine())
    log.info("decision API on http://%s:%d/v1/decide/{kind}", settings.api_host, settings.api_port)
    web.run_app(
        build_api(service),
        host=settings.api_host,
        port=settings.api_port,
        print=None,
        access_log=None,
    )
