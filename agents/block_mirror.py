"""Block mirror agent: fraud blocks -> Redis, batched; waits out Redis outages, loses nothing.

A batch is acknowledged only after Redis stored it: on a Redis error the agent retries the same
batch (with a capped backoff) instead of moving on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream
from redis.exceptions import RedisError

from schemas.codec import WireCodec
from schemas.models import FraudBlock
from sinks.redis_blocks import RedisBlockMirror
from streams.topics import Topics

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0


def register_block_mirror(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    mirror: RedisBlockMirror,
    clock: Callable[[], datetime],
    batch_size: int,
    batch_window_s: float,
) -> Any:
    source = app.topic(topics.fraud_blocks, key_type=bytes, value_type=bytes)

    async def mirror_blocks(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            blocks = [codec.decode(record.message.value, (FraudBlock,)) for record in batch]
            backoff = 0.1
            while True:
                try:
                    await mirror.write(blocks, int(clock().timestamp() * 1000))
                    break
                except RedisError as exc:
                    log.warning(
                        "Redis unavailable (%s); retrying %d blocks in %.1fs",
                        type(exc).__name__,
                        len(blocks),
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)

    return app.agent(source, name="atalaia.block-mirror")(mirror_blocks)
