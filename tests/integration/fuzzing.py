"""Throwing hostile records at a real worker among valid traffic, and counting what became of
them: the fuzz harness of ``test_poison.py``, also runnable on its own to measure a build
(``python -m tests.integration.fuzzing``: its own broker and worker, a JSON summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from yarl import URL

from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.supervise import WorkerProcess
from config.auth import key_digest
from config.settings import Settings, load_settings
from engine.admission import subject_of
from schemas.codec import WireCodec
from schemas.models import DeadLetter, Decision
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics
from tests.hostile import (
    GIFTS,
    LOGINS,
    TRANSACTIONS,
    VALIDATED,
    Hostile,
    HostileCall,
    as_value,
    hostile_calls,
    hostile_records,
    valid_events,
)
from tests.integration.helpers import API_KEYS

CODEC = WireCodec()
NO_ANSWER = 0
"""The status noted for a call the API never answered (connection dropped, timed out)."""
CRASH_LINE = "Crashed reason="
"""What Faust logs when an agent raised out of its loop (and is restarted)."""


@dataclass
class Sent:
    """What was sent: hostile records by where they landed, valid event ids."""

    hostile: dict[tuple[str, int, int], Hostile] = field(default_factory=dict)
    valid: set[str] = field(default_factory=set)


@dataclass
class Outcome:
    decided: set[str] = field(default_factory=set)
    letters: dict[tuple[str, int, int], DeadLetter] = field(default_factory=dict)
    seconds: float = 0.0


def topic_of(topics: Topics, kind: str) -> str:
    return {
        TRANSACTIONS: topics.transactions,
        LOGINS: topics.logins,
        GIFTS: topics.gifts,
        VALIDATED: topics.validated,
    }[kind]


async def send_mixed(
    bootstrap: str, topics: Topics, hostile_count: int, valid_count: int, seed: int = 26
) -> Sent:
    """Send ``hostile_count`` hostile records and ``valid_count`` valid events, shuffled
    together, and note where each landed."""
    rng = random.Random(seed)
    users = [f"fuzz-user-{n}" for n in range(40)]
    hostile = list(hostile_records(hostile_count, users, seed))
    valid = valid_events(valid_count, users, seed + 1)
    mixed: list[Hostile | tuple[str, bytes, bytes]] = [*hostile]
    for event in valid:
        kind = {"TransactionEvent": TRANSACTIONS, "LoginEvent": LOGINS, "GiftEvent": GIFTS}[
            type(event).__name__
        ]
        mixed.append((kind, subject_of(event).key.encode(), as_value(event, rng)))
    rng.shuffle(mixed)
    sent = Sent(valid={e.event_id for e in valid})
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        pending = []
        for item in mixed:
            if isinstance(item, Hostile):
                topic, key, value = topic_of(topics, item.kind), item.key, item.value
            else:
                topic, key, value = topic_of(topics, item[0]), item[1], item[2]
            pending.append((item, await producer.send(topic, value, key=key)))
        for item, future in pending:
            metadata = await future
            if isinstance(item, Hostile):
                sent.hostile[(metadata.topic, metadata.partition, metadata.offset)] = item
    finally:
        await producer.stop()
    return sent


async def collect_outcome(
    bootstrap: str, topics: Topics, sent: Sent, idle_timeout_s: float
) -> Outcome:
    """Decisions and dead letters until every valid event is decided and every hostile
    record dead-lettered, or until ``idle_timeout_s`` of silence."""
    outcome = Outcome()
    started = time.monotonic()
    records = read_topics(bootstrap, [topics.decisions, topics.dead_letters], True, idle_timeout_s)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.decisions:
                outcome.decided.add(CODEC.decode(record.value, (Decision,)).event_id)
            else:
                letter = CODEC.decode(record.value, (DeadLetter,))
                where = (letter.source_topic, letter.source_partition, letter.source_offset)
                outcome.letters[where] = letter
            if sent.valid <= outcome.decided and set(sent.hostile) <= set(outcome.letters):
                break
    outcome.seconds = time.monotonic() - started
    return outcome


async def call_all(port: int, calls: list[HostileCall]) -> list[tuple[HostileCall, int]]:
    """Make every call (16 at a time) with its role's key; each call and its status."""
    answered: list[tuple[HostileCall, int]] = []
    gate = asyncio.Semaphore(16)
    timeout = aiohttp.ClientTimeout(total=30)

    async def one(session: aiohttp.ClientSession, call: HostileCall) -> None:
        headers = dict(call.headers)
        if call.role != "none":
            headers["Authorization"] = f"Bearer {API_KEYS[call.role]}"
        url = URL(f"http://127.0.0.1:{port}{call.path}", encoded=True)
        async with gate:
            try:
                async with session.request(
                    call.method, url, data=call.body, headers=headers
                ) as response:
                    await response.read()
                    answered.append((call, response.status))
            except (aiohttp.ClientError, TimeoutError):
                answered.append((call, NO_ANSWER))

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, call) for call in calls))
    return answered


def summary(sent: Sent, outcome: Outcome, log_text: str) -> dict[str, object]:
    """The counts the harness reports: sent, dead-lettered by class, valid decided, hostile
    records neither dead-lettered (decided or lost), agent crashes."""
    lettered = [outcome.letters[where] for where in sent.hostile if where in outcome.letters]
    missed = Counter(
        h.category for where, h in sent.hostile.items() if where not in outcome.letters
    )
    return {
        "hostile_sent": len(sent.hostile),
        "hostile_by_category": dict(Counter(h.category for h in sent.hostile.values())),
        "valid_sent": len(sent.valid),
        "valid_decided": len(sent.valid & outcome.decided),
        "dead_lettered": len(lettered),
        "dead_lettered_by_class": dict(Counter(letter.error_class for letter in lettered)),
        "hostile_not_dead_lettered_by_category": dict(missed),
        "other_dead_letters": len(set(outcome.letters) - set(sent.hostile)),
        "agent_crashes": log_text.count(CRASH_LINE),
        "seconds": round(outcome.seconds, 1),
    }


def main() -> int:
    """Measure the build in this directory: a broker and one worker of its own."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hostile", type=int, default=10_000)
    parser.add_argument("--valid", type=int, default=2_000)
    parser.add_argument("--idle-timeout", type=float, default=90.0)
    parser.add_argument("--calls", type=int, default=1_700)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="atalaia-fuzz-"))
    with EmbeddedBroker(log_file=workdir / "tansu.log") as broker:
        unique = uuid.uuid4().hex[:10]
        settings: Settings = load_settings(
            bootstrap_servers=broker.bootstrap_servers,
            topic_prefix=f"fuzz-{unique}",
            app_id=f"atalaia-fuzz-{unique}",
            partitions=3,
            data_dir=workdir / "data",
        )
        asyncio.run(ensure_topics(settings))
        topics = Topics(settings.topic_prefix)
        log = workdir / "worker.log"
        worker = WorkerProcess(settings, log).start()
        try:
            sent = asyncio.run(
                send_mixed(settings.bootstrap_servers, topics, args.hostile, args.valid)
            )
            outcome = asyncio.run(
                collect_outcome(settings.bootstrap_servers, topics, sent, args.idle_timeout)
            )
            alive = worker.alive
        finally:
            worker.stop()
        http = _measure_api(settings, workdir, args.calls)
    result = summary(sent, outcome, log.read_text(errors="replace"))
    result["worker_alive_at_end"] = alive
    result["http"] = http
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _measure_api(settings: Settings, workdir: Path, count: int) -> dict[str, object]:
    """Hostile calls at an ``atalaia api`` of its own: answers by status class, and the
    routes and statuses of the 5xx."""
    keys = ",".join(f"{role}-key:{role}:{key_digest(key)}" for role, key in API_KEYS.items())
    api_settings = settings.model_copy(
        update={
            "api_port": free_port(),
            "api_keys": SecretStr(keys),
            "key_store_dir": workdir / "keys",
        }
    )
    api = WorkerProcess(api_settings, workdir / "api.log", command="api").start()
    try:
        if not wait_for_port("127.0.0.1", api_settings.api_port, 60):
            return {"error": "the api did not listen"}
        answered = asyncio.run(call_all(api_settings.api_port, list(hostile_calls(count))))
        alive = api.alive
    finally:
        api.stop()
    log = (workdir / "api.log").read_text(errors="replace")
    return {
        "calls": len(answered),
        "by_status_class": dict(Counter(f"{status // 100}xx" for _, status in answered)),
        "5xx_by_route": dict(Counter(f"{c.method} {c.route} {s}" for c, s in answered if s >= 500)),
        "tracebacks_in_log": log.count("Traceback"),
        "api_alive_at_end": alive,
    }


if __name__ == "__main__":
    raise SystemExit(main())
