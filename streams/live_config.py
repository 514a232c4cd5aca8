"""Runtime configuration: the rules in force follow the compacted config topic.

Records are keyed ``rules`` and hold the same TOML as ``config/rules.toml``. A worker starts
from the latest valid record (or the file), then keeps following the topic; a rejected record
goes to the dead-letter topic with its reason and the rules in force stay.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import ConsumerRecord, TopicPartition

from config.rules import LiveRules, RulesError, RuleSet, parse_rules
from config.settings import Settings
from schemas.codec import WireCodec
from schemas.dead_letters import dead_letter_of
from streams.reader import MissingTopicError, Positions, follow_topics, read_topics
from streams.topics import Topics

RULES_KEY = b"rules"
log = logging.getLogger(__name__)


@dataclass
class StartingRules:
    rules: RuleSet
    positions: Positions = field(default_factory=dict)
    """Where following the topic goes on: past every record read at start-up."""


async def latest_rules(settings: Settings, fallback: RuleSet) -> StartingRules:
    """The rules a worker starts with: the topic's latest valid record, else ``fallback``.
    The read goes to the topic's end as it was when the read began, so a worker never starts
    with older rules because the broker was slow to answer."""
    live = LiveRules(fallback)
    start = StartingRules(fallback)
    config_topic = Topics(settings.topic_prefix).config
    records = read_topics(settings.bootstrap_servers, [config_topic], stop_when_caught_up=True)
    async with aclosing(records):
        async for record in records:
            start.positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if record.key == RULES_KEY and record.value is not None:
                live.apply(record.value.decode("utf-8", "replace"), "config topic")
    start.rules = live.current
    return start


async def published_rules(settings: Settings) -> dict[str, RuleSet]:
    """Every valid rules version on the config topic, as first published (what a worker
    keeps once it applied a version); empty when the topic does not exist yet."""
    published: dict[str, RuleSet] = {}
    config_topic = Topics(settings.topic_prefix).config
    records = read_topics(settings.bootstrap_servers, [config_topic], stop_when_caught_up=True)
    try:
        async with aclosing(records):
            async for record in records:
                if record.key != RULES_KEY or record.value is None:
                    continue
                try:
                    rules = parse_rules(record.value.decode("utf-8", "replace"), "config topic")
                except RulesError:
                    continue  # rejected by every worker: it published nothing
                published.setdefault(rules.version, rules)
    except MissingTopicError:
        return {}
    return published


RejectedRules = Callable[[ConsumerRecord[bytes, bytes], str], Awaitable[None]]


async def follow_rules(
    bootstrap_servers: str,
    topics: Topics,
    live: LiveRules,
    positions: Positions,
    on_rejected: RejectedRules,
) -> None:
    """Apply every rules record from ``positions`` on, for ever; report the rejected ones."""

    async def take(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key == RULES_KEY and record.value is not None:
            await _take(record, record.value, live, on_rejected)

    await follow_topics(bootstrap_servers, [topics.config], take, "rules follower", None, positions)


async def _take(
    record: ConsumerRecord[bytes, bytes], value: bytes, live: LiveRules, on_rejected: RejectedRules
) -> None:
    source = f"{record.topic}[{record.partition}]@{record.offset}"
    outcome = live.apply(value.decode("utf-8", "replace"), source)
    if outcome.applied:
        log.info("rules version %s in force (from %s)", live.current.version, source)
    elif outcome.error:
        log.warning("rejected rules from %s: %s", source, outcome.error)
        await on_rejected(record, outcome.error)


def register_config_follower(
    app: faust.App,
    settings: Settings,
    live: LiveRules,
    codec: WireCodec,
    positions: Positions,
) -> Any:
    """Follow the config topic past what the worker read at start-up; dead-letter rejects."""
    topics = Topics(settings.topic_prefix)
    dead_letters = app.topic(topics.dead_letters, key_type=bytes, value_type=bytes)

    async def dead_letter(record: ConsumerRecord[bytes, bytes], error: str) -> None:
        key, letter = dead_letter_of(record, "ConfigRejected", error, datetime.now(UTC))
        await dead_letters.send(key=key, value=codec.encode(letter))

    async def follow_config() -> None:
        await follow_rules(settings.bootstrap_servers, topics, live, positions, dead_letter)

    return app.task(follow_config)
