"""Follow the fraud-blocks topic into a worker's ``BlockView`` (blocks on IPs and devices)."""

from __future__ import annotations

import logging
from contextlib import aclosing

from engine.entities import BlockView
from schemas.codec import DecodeError, WireCodec
from schemas.models import FraudBlock
from streams.reader import read_topics

log = logging.getLogger(__name__)


async def follow_blocks(bootstrap_servers: str, topic: str, view: BlockView) -> None:
    codec = WireCodec()
    records = read_topics(bootstrap_servers, [topic], True, None)
    async with aclosing(records):
        async for record in records:
            try:
                view.apply(codec.decode(record.value, (FraudBlock,)))
            except DecodeError as exc:
                log.warning(
                    "unreadable fraud block at %d@%d: %s", record.partition, record.offset, exc
                )
