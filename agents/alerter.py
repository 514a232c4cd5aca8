"""Alerter agent (in ``atalaia sink``, which reads every partition of the decisions): the
seed's triggers and throttling (``engine.alerts``) over all decisions; alerts go to the
alerts topic and to the configured webhooks (in the background, never blocking)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream

from config.rules import AlertRules
from engine.alerts import AlertEngine
from schemas.codec import DecodeError, WireCodec
from schemas.models import Decision
from sinks.webhooks import WebhookSender
from streams.metrics import ALERTS_SENT
from streams.side_producer import SideProducer
from streams.topics import Topics

log = logging.getLogger(__name__)
BATCH = 200
WINDOW_S = 0.5


def register_alerter(
    app: faust.App,
    topics: Topics,
    rules: AlertRules,
    webhooks: list[str],
    clock: Callable[[], datetime],
) -> Any:
    codec = WireCodec()
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]
    engine = AlertEngine(rules)
    sender = WebhookSender(webhooks)
    source = app.topic(topics.decisions, key_type=bytes, value_type=bytes)

    async def alert(stream: faust.StreamT[bytes]) -> None:
        async for records in cast(Stream[bytes], stream).take_events(BATCH, within=WINDOW_S):
            raised = []
            for record in records:
                try:
                    decision = codec.decode(record.message.value, (Decision,))
                except DecodeError:
                    continue
                raised += engine.observe(decision, clock())
            sends = [
                await producer.send(topics.alerts, a.alert_id.encode(), codec.encode(a))
                for a in raised
            ]
            await asyncio.gather(*sends)
            for sent in raised:
                ALERTS_SENT.labels(sent.rule).inc()
                sender.enqueue(sent)
                log.info("alert %s %s: %s", sent.severity, sent.rule, sent.message)

    app.task(sender.run)
    return app.agent(source, name="atalaia.alerter")(alert)
