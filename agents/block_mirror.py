"""Block mirror agent: fraud blocks -> Redis, batched; waits out Redis outages, loses nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import faust

from agents.redis_mirror import register_redis_mirror
from schemas.codec import WireCodec
from schemas.models import FraudBlock
from sinks.redis_blocks import RedisBlockMirror
from streams.topics import Topics


def register_block_mirror(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    mirror: RedisBlockMirror,
    clock: Callable[[], datetime],
    batch_size: int,
    batch_window_s: float,
) -> Any:
    async def write_blocks(values: Sequence[bytes | None]) -> int:
        blocks = [codec.decode(value, (FraudBlock,)) for value in values]
        return await mirror.write(blocks, int(clock().timestamp() * 1000))

    return register_redis_mirror(
        app, topics.fraud_blocks, "atalaia.block-mirror", write_blocks, batch_size, batch_window_s
    )
