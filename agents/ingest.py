"""Ingest agent: validate raw input, route good events by subject, dead-letter the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream

from config.rules import LiveRules
from engine.admission import admit, subject_of
from schemas.codec import DecodeError, WireCodec
from schemas.models import DeadLetter
from streams.topics import Topics

log = logging.getLogger(__name__)


def register_ingest(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    live: LiveRules,
    clock: Callable[[], datetime],
    batch_size: int,
    batch_window_s: float,
) -> Any:
    contracts = topics.input_models()
    source = app.topic(*contracts, key_type=bytes, value_type=bytes)
    validated = app.topic(topics.validated, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(topics.dead_letters, key_type=bytes, value_type=bytes)

    async def ingest(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            now = clock()
            sends = []
            for record in batch:
                msg = record.message
                try:
                    event = admit(
                        codec, msg.value, contracts[msg.topic], now, live.current.validation
                    )
                except DecodeError as exc:
                    log.warning(
                        "dead-lettered %s[%d]@%d: %s: %s",
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        exc.error_class,
                        exc.message,
                    )
                    letter = DeadLetter(
                        original_value=msg.value,
                        original_key=msg.key,
                        source_topic=msg.topic,
                        source_partition=msg.partition,
                        source_offset=msg.offset,
                        error_class=exc.error_class,
                        error_message=exc.message,
                        failed_at=now,
                    )
                    key = f"{msg.topic}:{msg.partition}:{msg.offset}".encode()
                    sends.append(await dead_letters.send(key=key, value=codec.encode(letter)))
                    continue
                # Keep the input's broker timestamp: the scoring agent measures latency from it.
                sends.append(
                    await validated.send(
                        key=subject_of(event).key.encode(),
                        value=codec.encode(event),
                        timestamp=msg.timestamp,
                    )
                )
            # Wait for the whole batch to be acknowledged before its offsets can be committed.
            await asyncio.gather(*sends)

    return app.agent(source, name="atalaia.ingest")(ingest)
