"""Counter mirror agent: decisions -> rate-limit counters in Redis, batched; waits out Redis
outages, loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import faust

from agents.redis_mirror import register_redis_mirror
from config.rules import LiveRules
from schemas.codec import DecodeError, WireCodec
from schemas.models import Decision
from sinks.redis_counters import RedisCounterMirror
from streams.topics import Topics

log = logging.getLogger(__name__)


def register_counter_mirror(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    mirror: RedisCounterMirror,
    live: LiveRules,
    clock: Callable[[], datetime],
    batch_size: int,
    batch_window_s: float,
) -> Any:
    async def write_counters(values: Sequence[bytes | None]) -> int:
        decisions = []
        for value in values:
            try:
                decisions.append(codec.decode(value, (Decision,)))
            except DecodeError as exc:  # not ours to fix here: the topic keeps it
                log.warning("unreadable decision record: %s", exc)
        rules = live.current
        now_ms = int(clock().timestamp() * 1000)
        return await mirror.write(
            decisions, rules.sync.mirrored_counters, rules.velocity.windows, now_ms
        )

    return register_redis_mirror(
        app, topics.decisions, "atalaia.counter-mirror", write_counters, batch_size, batch_window_s
    )
