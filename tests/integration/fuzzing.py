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

from aiokafka import AIOKafkaProducer

from atalaia.broker import EmbeddedBroker
from atalaia.supervise import WorkerProcess
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
    as_value,
    hostile_records,
    valid_events,
)

CODEC = WireCodec()
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
    result = summary(sent, outcome, log.read_text(errors="replace"))
    result["worker_alive_at_end"] = alive
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
