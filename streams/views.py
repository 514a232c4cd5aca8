"""Follow a compacted topic whole into an in-memory view every worker keeps: the blocks on
entities (fraud-blocks) and the block/allow lists (lists). Read from the beginning, then kept
up to date; an unreadable record is logged and skipped, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import TypeVar

from config.default_lists import default_list_rows
from engine.lists import ListView, default_entries
from schemas.codec import DecodeError, WireCodec
from schemas.models import WireModel
from streams.reader import for_ever, read_topics

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
    that is still loading). A broker failure starts the read again; what was applied is
    skipped."""
    codec = WireCodec()
    applied: dict[int, int] = {}  # partition -> last offset applied

    async def follow() -> None:
        records = read_topics(bootstrap_servers, [topic], True, None, caught_up=caught_up)
        async with aclosing(records):
            async for record in records:
                if record.offset <= applied.get(record.partition, -1):
                    continue
                applied[record.partition] = record.offset
                if record.value is None:
                    continue  # a tombstone: nothing to apply
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

    await for_ever(follow, f"view of {topic}")


def default_list_view(hash_key: bytes) -> ListView:
    """The lists every view starts from: the shipped default entries, before the topic's."""
    defaults_at, rows = default_list_rows()
    return ListView(default_entries(rows, hash_key, defaults_at))
