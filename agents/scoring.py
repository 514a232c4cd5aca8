"""Scoring agent: one Decision per validated event, keyed by subject, on the decisions topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import faust
from faust.streams import Stream

from config.rules import RuleSet
from engine.decisions import build_decision
from engine.scoring import assess
from schemas.codec import WireCodec
from streams.topics import Topics


def register_scoring(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    rules: RuleSet,
    clock: Callable[[], datetime],
    batch_size: int,
    batch_window_s: float,
) -> Any:
    validated = app.topic(topics.validated, key_type=bytes, value_type=bytes)
    decisions = app.topic(topics.decisions, key_type=bytes, value_type=bytes)

    async def score(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            sends = []
            for record in batch:
                msg = record.message
                event = codec.decode_event(msg.value)
                decision = build_decision(
                    event,
                    assess(event, rules),
                    rule_version=rules.version,
                    received_at=datetime.fromtimestamp(msg.timestamp, UTC),
                    decided_at=clock(),
                )
                sends.append(await decisions.send(key=msg.key, value=codec.encode(decision)))
            await asyncio.gather(*sends)

    return app.agent(validated, name="atalaia.scoring")(score)
