"""One shape for the agents that mirror a topic into Redis: batched, retried through Redis
outages until stored (so a committed offset means its batch is in Redis), nothing lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream
from redis.exceptions import RedisError

from agents.retry import until_stored

WriteBatch = Callable[[Sequence[bytes | None]], Awaitable[object]]


def register_redis_mirror(
    app: faust.App,
    topic: str,
    name: str,
    write_batch: WriteBatch,
    batch_size: int,
    batch_window_s: float,
) -> Any:
    """An agent that hands each batch of ``topic``'s values to ``write_batch``."""
    source = app.topic(topic, key_type=bytes, value_type=bytes)

    async def mirror(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            values = [record.message.value for record in batch]
            await until_stored(
                partial(write_batch, values),
                (RedisError,),
                f"{name}: mirroring {len(values)} records to Redis",
            )

    return app.agent(source, name=name)(mirror)
