"""Counter mirror agent: decisions -> rate-limit counters in Redis, batched; waits out Redis
outages, loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream
from redis.exceptions import RedisError

from agents.retry import until_stored
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
    source = app.topic(topics.decisions, key_type=bytes, value_type=bytes)

    async def mirror_counters(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            rules = live.current
            decisions = []
            for record in batch:
                try:
                    decisions.append(codec.decode(record.message.value, (Decision,)))
                except DecodeError as exc:  # not ours to fix here: the topic keeps it
                    log.warning("unreadable decision at %s: %s", record.message.tp, exc)
            now_ms = int(clock().timestamp() * 1000)
            await until_stored(
                partial(
                    mirror.write,
                    decisions,
                    rules.sync.mirrored_counters,
                    rules.velocity.windows,
                    now_ms,
                ),
                (RedisError,),
                f"mirroring counters of {len(decisions)} decisions to Redis",
            )

    return app.agent(source, name="atalaia.counter-mirror")(mirror_counters)
