"""Scoring agent: one Decision per validated event, keyed by subject, on the decisions topic.

Each subject's velocity state lives in a Faust table (RocksDB, changelog-backed) whose key is
the subject: the validated topic is keyed the same way, so the partition that owns a subject
owns its state. Events are handled one at a time so every table write goes to the changelog
partition of the event that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from config.rules import LiveRules
from engine.decisions import build_decision
from engine.features import record_and_read
from engine.scoring import assess
from engine.velocity import VelocityState
from schemas.codec import WireCodec
from streams.topics import Topics


def register_scoring(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    live: LiveRules,
    clock: Callable[[], datetime],
    partitions: int,
) -> Any:
    validated = app.topic(topics.validated, key_type=bytes, value_type=bytes)
    decisions = app.topic(topics.decisions, key_type=bytes, value_type=bytes)
    velocity = app.Table(
        "velocity",
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="per-subject velocity state (engine.velocity.VelocityState as JSON)",
    )

    async def score(stream: faust.StreamT[bytes]) -> None:
        async for record in stream.events():
            msg = record.message
            event = codec.decode_event(msg.value)
            rules = live.current  # one version per decision, even if it changes meanwhile
            state = VelocityState.from_bytes(velocity.get(msg.key))
            features = record_and_read(
                state, event, rules.velocity.windows, rules.velocity.horizon_s
            )
            velocity[msg.key] = state.to_bytes()
            decision = build_decision(
                event,
                assess(event, rules, features),
                rule_version=rules.version,
                received_at=datetime.fromtimestamp(msg.timestamp, UTC),
                decided_at=clock(),
            )
            # Buffered: Faust flushes the producer before it commits the offset.
            await decisions.send(key=msg.key, value=codec.encode(decision))

    return app.agent(validated, name="atalaia.scoring")(score)
