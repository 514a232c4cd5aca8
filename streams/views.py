"""Follow a compacted topic whole into an in-memory view every worker keeps: the blocks on
entities (fraud-blocks) and the block/allow lists (lists). Read from the beginning, then kept
up to date; an unreadable record is logged and skipped, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from aiokafka import ConsumerRecord

from engine.default_lists import default_list_rows
from engine.lists import ListView, default_entries
from schemas.codec import DecodeError, WireCodec
from schemas.models import WireModel
from streams.reader import follow_topics

log = logging.getLogger(__name__)

M = TypeVar("M", bound=WireModel)


async def follow_into(
    bootstrap_servers: str,
    topic: str,
    model: type[M],
    apply: Callable[[M], None],
    caught_up: Callable[[], None],
) -> None:
    """Apply every record of ``topic`` from the beginning, for ever; ``caught_up`` once what
    was there at the start has been applied (scoring waits for it: no decision on a view
    that is still loading)."""
    codec = WireCodec()

    async def take(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return  # a tombstone: nothing to apply
        try:
            apply(codec.decode(record.value, (model,)))
        except DecodeError as exc:
            log.warning(
                "unreadable %s at %s[%d]@%d: %s",
                model.avro_name,
                topic,
                record.partition,
                record.offset,
                exc,
            )

    await follow_topics(bootstrap_servers, [topic], take, f"view of {topic}", caught_up)


def default_list_view(hash_key: bytes) -> ListView:
    """The lists every view starts from: the shipped default entries, before the topic's."""
    defaults_at, rows = default_list_rows()
    return ListView(default_entries(rows, hash_key, defaults_at))
