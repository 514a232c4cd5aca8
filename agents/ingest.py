"""Ingest agent: validate raw input, route good events by subject, dead-letter the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.streams import Stream

from agents.retry import until_stored
from config.rules import LiveRules
from engine.admission import admit, subject_of
from schemas.codec import DecodeError, WireCodec
from schemas.dead_letters import dead_letter_of
from streams.side_producer import SideProducer
from streams.topics import Topics

log = logging.getLogger(__name__)


Output = tuple[str, bytes, bytes, float | None]  # topic, key, value, timestamp (s)


async def _send_all(producer: SideProducer, outputs: list[Output]) -> None:
    """Send every output and wait until the broker acknowledged all of them."""
    sends = [await producer.send(*output) for output in outputs]
    await asyncio.gather(*sends)


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
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]

    async def ingest(stream: faust.StreamT[bytes]) -> None:
        # StreamT does not declare take_events; every Faust stream has it.
        async for batch in cast(Stream[bytes], stream).take_events(
            batch_size, within=batch_window_s
        ):
            now = clock()
            outputs: list[Output] = []
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
                    key, letter = dead_letter_of(msg, exc.error_class, exc.message, now)
                    outputs.append((topics.dead_letters, key, codec.encode(letter), None))
                    continue
                # Keep the input's broker timestamp: the scoring agent measures latency from it.
                outputs.append(
                    (
                        topics.validated,
                        subject_of(event).key.encode(),
                        codec.encode(event),
                        msg.timestamp,
                    )
                )

            # The batch is acknowledged when this loop moves on: only once all of it is stored.
            await until_stored(
                partial(_send_all, producer, outputs),
                (KafkaError,),
                f"sending {len(outputs)} records",
            )

    return app.agent(source, name="atalaia.ingest")(ingest)
