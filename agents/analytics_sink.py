"""Analytics sink agent (``atalaia sink``): decisions, input events, cases, labels, alerts,
the chained audit records and their Merkle batches into ClickHouse (``sinks.clickhouse``), in
batches by size and time.

A batch is inserted before the agent moves on, and Faust commits offsets only for records it
moved past: an insert that fails (store down, disk full) is retried with backoff until it is
stored, so an outage loses nothing, and a crash re-inserts rows that ReplacingMergeTree
collapses by id. Records that cannot be decoded or turned into a row are skipped (they are in
the DLQ or logged by the agents that wrote them); the rest of their batch is stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream

from agents.retry import until_stored
from schemas.codec import DecodeError, WireCodec
from schemas.models import Alert, AuditBatch, AuditRecord, Case, Decision, Label, ShadowDecision
from sinks.clickhouse import (
    AnalyticsStore,
    alert_row,
    audit_row,
    batch_row,
    case_row,
    decision_row,
    event_row,
    label_row,
    shadow_row,
)
from streams.metrics import SINK_BATCH_ROWS, SINK_FAILURES
from streams.stopping import in_daemon_thread
from streams.topics import Topics

log = logging.getLogger(__name__)


class SinkWriteError(Exception):
    """An insert failed; the batch is retried."""


def register_analytics_sink(
    app: faust.App, topics: Topics, store: AnalyticsStore, batch_rows: int, batch_s: float
) -> Any:
    """``store``: the writer's own client (analysts' queries use another)."""
    codec = WireCodec()
    row_of: dict[str, tuple[str, Callable[[bytes | None], list[Any]]]] = {
        topics.decisions: ("decisions", lambda v: decision_row(codec.decode(v, (Decision,)))),
        topics.cases: ("cases", lambda v: case_row(codec.decode(v, (Case,)))),
        topics.labels: ("labels", lambda v: label_row(codec.decode(v, (Label,)))),
        topics.audit: ("audit", lambda v: audit_row(codec.decode(v, (AuditRecord,)))),
        topics.alerts: ("alerts", lambda v: alert_row(codec.decode(v, (Alert,)))),
        topics.shadow_decisions: (
            "shadow_decisions",
            lambda v: shadow_row(codec.decode(v, (ShadowDecision,))),
        ),
        topics.audit_batches: (
            "audit_batches",
            lambda v: batch_row(codec.decode(v, (AuditBatch,))),
        ),
        **{
            topic: ("events", lambda v: event_row(codec.decode_event(v)))
            for topic in topics.input_models()
        },
    }
    source = app.topic(*row_of, key_type=bytes, value_type=bytes)

    def write(rows: dict[str, list[list[Any]]]) -> int:
        try:
            return sum(store.insert(table, table_rows) for table, table_rows in rows.items())
        except Exception as exc:  # the client raises many types; the batch is kept
            SINK_FAILURES.inc()
            raise SinkWriteError(f"{type(exc).__name__}: {exc}") from exc

    async def write_batch(rows: dict[str, list[list[Any]]]) -> int:
        return await in_daemon_thread(write, rows)  # a stop does not wait for it

    async def sink(stream: faust.StreamT[bytes]) -> None:
        async for records in cast(Stream[bytes], stream).take_events(batch_rows, within=batch_s):
            rows: dict[str, list[list[Any]]] = defaultdict(list)
            for record in records:
                table, convert = row_of[record.message.topic]
                try:
                    rows[table].append(convert(record.message.value))
                except DecodeError:
                    continue
                except Exception as exc:  # one odd record must not cost the batch its rows
                    log.warning("record on %s not stored: %s", table, type(exc).__name__)
                    continue
            count = sum(len(r) for r in rows.values())
            SINK_BATCH_ROWS.observe(count)
            await until_stored(
                partial(write_batch, rows), (SinkWriteError,), f"storing {count} rows"
            )

    return app.agent(source, name="atalaia.analytics-sink")(sink)
