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
from engine.decide import decide_event
from engine.decisions import build_decision
from engine.velocity import VelocityState
from schemas.codec import WireCodec
from streams.side_producer import SideProducer
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
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]
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
            outcome = decide_event(state, event, rules)
            velocity[msg.key] = state.to_bytes()
            for block in outcome.blocks:
                key = f"{block.entity_type.value}:{block.entity_id}".encode()
                await producer.send(topics.fraud_blocks, key, codec.encode(block))
            if outcome.fraud_event is not None:
                await producer.send(topics.fraud_events, msg.key, codec.encode(outcome.fraud_event))
            decision = build_decision(
                event,
                outcome.assessment,
                rule_version=rules.version,
                received_at=datetime.fromtimestamp(msg.timestamp, UTC),
                decided_at=clock(),
                actions=outcome.actions,
                user_message=outcome.user_message,
            )
            # Not awaited: Faust's pre-commit flush waits for it (streams/transport.py).
            await producer.send(topics.decisions, msg.key, codec.encode(decision))

    return app.agent(validated, name="atalaia.scoring")(score)
