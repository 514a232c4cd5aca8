"""Reading what the engine produced, for assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from atalaia.publish import OutRecord, publish
from atalaia.supervise import settings_env
from config.rules import load_rules
from config.settings import Settings
from engine.admission import subject_of
from engine.entities import entity_keys
from engine.features import (
    BLOCKED_FEATURE,
    ENTITY_BLOCKED_FEATURE,
    at_ms_of,
    record_and_read,
    window_feature,
)
from engine.velocity import VelocityState, WindowStats
from schemas.codec import WireCodec
from schemas.models import (
    DeadLetter,
    Decision,
    FraudBlock,
    FraudEvent,
    InputEvent,
    TransactionEvent,
    WireModel,
)
from streams.reader import read_decoded, read_topics
from streams.topics import Topics
from tests import factories

CODEC = WireCodec()


@dataclass
class Output:
    decisions: list[tuple[ConsumerRecord[bytes, bytes], Decision]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def decided_ids(self) -> set[str]:
        return {d.event_id for _, d in self.decisions}


async def send_events(
    bootstrap: str,
    topics: Topics,
    events: list[InputEvent],
    avro: bool = True,
    rate: float | None = None,
) -> None:
    records = [
        OutRecord(
            topics.input_topic_for(type(e)),
            subject_of(e).key.encode(),
            CODEC.encode(e) if avro else e.model_dump_json().encode(),
        )
        for e in events
    ]
    await publish(bootstrap, records, rate=rate)


async def collect(
    bootstrap: str,
    topics: Topics,
    want_decisions: set[str] | None,
    want_dead_letters: int = 0,
    idle_timeout_s: float = 60.0,
) -> Output:
    """Read decisions and dead letters until all wanted ones arrived, or until silence.

    ``want_decisions=None`` reads everything there is, until ``idle_timeout_s`` of silence.
    """
    out = Output()
    records = read_topics(bootstrap, [topics.decisions, topics.dead_letters], True, idle_timeout_s)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.decisions:
                out.decisions.append((record, CODEC.decode(record.value, (Decision,))))
            else:
                out.dead_letters.append(CODEC.decode(record.value, (DeadLetter,)))
            if (
                want_decisions is not None
                and want_decisions <= out.decided_ids()
                and len(out.dead_letters) >= want_dead_letters
            ):
                break
    return out


COUNTRIES = ("BR", "BR", "BR", "AR", "US")


def timed_transactions(count: int, users: int, spacing_ms: int = 700) -> list[TransactionEvent]:
    """Transactions in time order, ending now, spread over ``users`` subjects, with
    counterparties, countries and devices that vary (so every distinct count moves)."""
    start = datetime.now(UTC) - timedelta(milliseconds=count * spacing_ms + 60_000)
    return [
        factories.transaction(
            event_id=f"timed-{uuid.uuid4().hex[:8]}-{n}",
            user_id=f"user-{n % users}",
            occurred_at=start + timedelta(milliseconds=n * spacing_ms),
            amount_cents=1_000 + (n * 7919) % 500_000,
            counterparty_pix_key_hash=factories.sha(f"pix-{n % 7}"),
            country=COUNTRIES[n % len(COUNTRIES)],
            device_id=f"dev-{n % 4}",
        )
        for n in range(count)
    ]


def _second(event: TransactionEvent) -> int:
    """The second the engine counts the event in."""
    return at_ms_of(event) // 1000


def _stats(
    inside: list[TransactionEvent], counterparty: Callable[[TransactionEvent], str]
) -> WindowStats:
    """A window's statistics counted from the events in it, by brute force."""
    return WindowStats(
        len(inside),
        sum(e.amount_cents for e in inside),
        len({counterparty(e) for e in inside}),
        len({e.country for e in inside}),
        len({e.device_id for e in inside}),
    )


def recomputed_windows(
    events: list[TransactionEvent], windows: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Every window statistic (count, amount, distinct counterparties, countries, devices)
    for each event, from the input alone (sent in order).

    For event i of a user: that user's events j <= i whose second is in (t_i - W, t_i].
    """
    expected: dict[str, dict[str, int]] = {}
    for i, event in enumerate(events):
        at_s = _second(event)
        earlier = [e for e in events[: i + 1] if e.user_id == event.user_id]
        values: dict[str, int] = {}
        for name, length in windows.items():
            inside = [e for e in earlier if at_s - length < _second(e) <= at_s]
            stats = _stats(inside, lambda e: e.counterparty_pix_key_hash or "")
            for stat, value in zip(WindowStats._fields, stats, strict=True):
                values[window_feature("tx", stat, name)] = value
        expected[event.event_id] = values
    return expected


def reference_features(events: list[TransactionEvent]) -> dict[str, dict[str, int | float]]:
    """The features an uninterrupted engine reads for each event (windows, and the profile:
    previous event, countries and devices seen, last place, usual hours, amounts), computed
    from the input alone in order, each subject in a fresh state. Block flags are left out:
    blocks reach workers through their topic, at a time no input fixes."""
    rules = load_rules()
    states: dict[str, VelocityState] = {}
    expected = {}
    for event in events:
        state = states.setdefault(subject_of(event).key, VelocityState())
        features = record_and_read(state, event, rules)
        expected[event.event_id] = {
            name: value
            for name, value in features.items()
            if name not in (BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE)
        }
    return expected


def window_mismatches(
    decisions: list[Decision], expected: dict[str, dict[str, int | float]]
) -> list[str]:
    """Every decision whose features differ from the expected ones (should be none)."""
    wrong = []
    for decision in decisions:
        want = expected.get(decision.event_id)
        if want is None:
            continue
        got = {name: decision.features.get(name) for name in want}
        if got != want:
            differ = {name: (got[name], want[name]) for name in want if got[name] != want[name]}
            wrong.append(f"{decision.event_id}: (got, want) {differ}")
    return wrong


async def entity_window_mismatches(
    settings: Settings, events: list[TransactionEvent], attempts: int = 10
) -> list[str]:
    """Every tracked entity the events name whose state, as last written to the velocity
    changelog, holds window statistics (count, amount, distinct users, countries, devices)
    that differ from a recomputation from the input (should be none). Windows end at the
    entity's newest event. Retried while the last changelog writes may still be on their
    way."""
    rules = load_rules()
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    named: dict[str, list[TransactionEvent]] = {}
    for event in events:
        for key in entity_keys(event, rules.entities, hash_key):
            named.setdefault(key, []).append(event)
    changelog = f"{settings.app_id}-velocity-changelog"
    wrong = ["changelog not read"]
    for _ in range(attempts):
        latest: dict[bytes, bytes | None] = {}
        records = read_topics(settings.bootstrap_servers, [changelog], True, 2.0)
        async with aclosing(records):
            async for record in records:
                if record.key is not None:
                    latest[record.key] = record.value
        wrong = []
        for key, theirs in named.items():
            state = VelocityState.from_store(key.encode(), latest.get, rules.velocity.horizon_s)
            newest = max(_second(e) for e in theirs)
            for name, length in rules.velocity.windows.items():
                inside = [e for e in theirs if newest - length < _second(e)]
                # In an entity's windows the counterparty is the subject that used it.
                want = _stats(inside, lambda e: subject_of(e).key)
                got = state.window("tx", newest * 1000, length)
                if got != want:
                    wrong.append(f"{key} {name}: got {got}, want {want}")
        if not wrong:
            break
    return wrong


async def read_giftpix_outputs(
    bootstrap: str, topics: Topics
) -> tuple[list[FraudBlock], list[FraudEvent]]:
    """Everything on the fraud_blocks and fraud_events topics (until 2 s of silence)."""
    blocks: list[FraudBlock] = []
    events: list[FraudEvent] = []
    records = read_topics(bootstrap, [topics.fraud_blocks, topics.fraud_events], True, 2.0)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.fraud_blocks:
                blocks.append(CODEC.decode(record.value, (FraudBlock,)))
            else:
                events.append(CODEC.decode(record.value, (FraudEvent,)))
    return blocks, events


M = TypeVar("M", bound=WireModel)


async def read_all(bootstrap: str, topic: str, model: type[M]) -> list[M]:
    """Every record on ``topic`` (until 2 s of silence), decoded as ``model``."""
    found, unreadable = await read_decoded(bootstrap, {topic: (model,)})
    assert not unreadable, f"{unreadable} unreadable records on {topic}"
    return found


API_KEYS = {"analyst": "analyst-secret", "admin": "admin-secret"}
"""The API keys ``api_settings`` configures, by role."""


def admin_call(
    settings: Settings,
    method: str,
    path: str,
    body: object = None,
    role: str | None = "admin",
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One call to the admin API of ``settings``, with ``role``'s key (or a wrong one); the
    status and the JSON answer (the text when it is not JSON)."""
    headers = {"Content-Type": "application/json"}
    if role is not None:
        headers["Authorization"] = f"Bearer {API_KEYS.get(role, 'not-a-key')}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.api_port}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def run_atalaia(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m atalaia ARGS`` configured for ``settings``; its exit code and output."""
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "atalaia", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def scrape_metrics(port: int) -> dict[str, float]:
    """A process's Prometheus text on 127.0.0.1:``port``, as ``name{label=value,...}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values
