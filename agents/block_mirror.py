"""Block mirror agent: fraud blocks -> Redis, batched; waits out Redis outages, loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream
from redis.exceptions import RedisError

from agents.retry import until_stored
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
    source = app.topic(topics.fraud_blocks, key_type=bytes, value_type=bytes)

    async def mirror_blocks(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            blocks = [codec.decode(record.message.value, (FraudBlock,)) for record in batch]
            now_ms = int(clock().timestamp() * 1000)
            await until_stored(
                partial(mirror.write, blocks, now_ms),
                (RedisError,),
                f"mirroring {len(blocks)} blocks to Redis",
            )

    return app.agent(source, name="atalaia.block-mirror")(mirror_blocks)
