"""The analysts' store: decisions, events, cases, labels, audit records and a challenger's
shadow decisions in ClickHouse,
through clickhouse-connect. One code path for both places it can live: an embedded chDB
directory (``chdb:///path``, the default: no server to run) or a ClickHouse server URL.

Tables are ReplacingMergeTree keyed by the record id, so a re-delivered row does not count
twice in ``FINAL`` queries (the dashboard views use FINAL); partitioned by day of event time;
money as integer centavos; times as DateTime64(3, 'UTC').
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.models import (
    Alert,
    AuditBatch,
    AuditRecord,
    Case,
    Decision,
    GiftEvent,
    InputEvent,
    Label,
    LoginEvent,
    ShadowDecision,
    TransactionEvent,
)

_TABLES = {
    "decisions": """
        CREATE TABLE IF NOT EXISTS decisions (
            event_id String,
            event_kind LowCardinality(String),
            event_type LowCardinality(String),
            subject_type LowCardinality(String),
            subject_id String,
            user_id Nullable(String),
            score UInt8,
            band LowCardinality(String),
            decision LowCardinality(String),
            reason_codes Array(LowCardinality(String)),
            reason_points Array(Int16),
            actions Array(LowCardinality(String)),
            rule_version LowCardinality(String),
            event_occurred_at DateTime64(3, 'UTC'),
            decided_at DateTime64(3, 'UTC'),
            latency_ms UInt32,
            version UInt64,
            model_version LowCardinality(Nullable(String)),
            model_probability Nullable(Float64)
        ) ENGINE = ReplacingMergeTree(version)
        PARTITION BY toDate(event_occurred_at)
        ORDER BY event_id""",
    "shadow_decisions": """
        CREATE TABLE IF NOT EXISTS shadow_decisions (
            event_id String,
            event_kind LowCardinality(String),
            subject_id String,
            event_occurred_at DateTime64(3, 'UTC'),
            amount_cents Nullable(Int64),
            champion_decision LowCardinality(String),
            champion_score UInt8,
            champion_version LowCardinality(String),
            challenger_decision LowCardinality(String),
            challenger_score UInt8,
            challenger_version LowCardinality(String),
            challenger_reasons Array(LowCardinality(String))
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toDate(event_occurred_at)
        ORDER BY (event_id, challenger_version)""",
    "events": """
        CREATE TABLE IF NOT EXISTS events (
            event_id String,
            event_kind LowCardinality(String),
            event_type LowCardinality(String),
            user_id String,
            amount_cents Nullable(Int64),
            country LowCardinality(Nullable(String)),
            channel LowCardinality(Nullable(String)),
            occurred_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toDate(occurred_at)
        ORDER BY event_id""",
    "cases": """
        CREATE TABLE IF NOT EXISTS cases (
            case_id String,
            subject_type LowCardinality(String),
            subject_id String,
            status LowCardinality(String),
            priority LowCardinality(String),
            assignee Nullable(String),
            event_ids Array(String),
            reason_codes Array(LowCardinality(String)),
            opened_at DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC'),
            closed_at Nullable(DateTime64(3, 'UTC')),
            outcome LowCardinality(Nullable(String)),
            version UInt32
        ) ENGINE = ReplacingMergeTree(version)
        PARTITION BY toYYYYMM(opened_at)
        ORDER BY case_id""",
    "labels": """
        CREATE TABLE IF NOT EXISTS labels (
            label_id String,
            subject_type LowCardinality(String),
            subject_id String,
            is_fraud Bool,
            event_ids Array(String),
            labelled_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(labelled_at)
        ORDER BY label_id""",
    "alerts": """
        CREATE TABLE IF NOT EXISTS alerts (
            alert_id String,
            rule LowCardinality(String),
            severity LowCardinality(String),
            channels Array(LowCardinality(String)),
            message String,
            subject_id Nullable(String),
            event_id String,
            created_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toDate(created_at)
        ORDER BY alert_id""",
    "audit_batches": """
        CREATE TABLE IF NOT EXISTS audit_batches (
            batch_id String,
            chain Int32,
            first_sequence Int64,
            last_sequence Int64,
            count UInt32,
            root String,
            previous_root Nullable(String),
            closed_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(closed_at)
        ORDER BY batch_id""",
    "audit": """
        CREATE TABLE IF NOT EXISTS audit (
            audit_id String,
            timestamp DateTime64(3, 'UTC'),
            action LowCardinality(String),
            actor_type LowCardinality(String),
            actor_id String,
            chain Nullable(Int32),
            sequence Nullable(Int64),
            record String
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toDate(timestamp)
        ORDER BY audit_id""",
}

_COLUMNS = {
    name: [
        line.split()[0]
        for line in ddl.split("(", 1)[1].split(") ENGINE", 1)[0].splitlines()
        if line.strip()
    ]
    for name, ddl in _TABLES.items()
}
"""Column names of each table, in DDL order (the order rows are built in)."""


_ADDED_COLUMNS = (
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS model_version LowCardinality(Nullable(String))",
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS model_probability Nullable(Float64)",
)
"""Columns added after a table's first release: a store made by an earlier version gets them."""


def connect(target: str) -> Client:
    """A client for ``target``: a chDB directory (a path, or ``chdb:///path``) or a server
    URL (``http://host:8123`` ...)."""
    if "://" not in target:
        Path(target).mkdir(parents=True, exist_ok=True)
        target = f"chdb://{Path(target).resolve()}"
    return clickhouse_connect.get_client(dsn=target)


def held_elsewhere(target: str) -> bool:
    """Whether another process has the chDB directory ``target`` open: the embedded server
    holds an exclusive lock on its ``status`` file while it runs (one process per directory)."""
    if target.startswith("chdb://"):
        target = target.removeprefix("chdb://")
    elif "://" in target:
        return False  # a server: many clients at once
    try:
        fd = os.open(Path(target) / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


ANALYST_QUERY_S = 30
"""How long one analyst's query may run before ClickHouse stops it."""


class AnalyticsStore:
    def __init__(self, client: Client) -> None:
        self.client = client

    def ensure_schema(self) -> None:
        for ddl in (*_TABLES.values(), *_ADDED_COLUMNS):
            self.client.command(ddl)
        for name, sql in view_statements():
            self.client.command(f"CREATE OR REPLACE VIEW {name} AS {sql}")

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> int:
        if rows:
            self.client.insert(table, list(rows), column_names=_COLUMNS[table])
        return len(rows)

    def query_read_only(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query that cannot change anything (ClickHouse ``readonly`` mode) and runs at
        most ``ANALYST_QUERY_S``. On chDB the settings stay on the client's session (in this
        order: once read-only, no setting can change), so analysts' queries run on a client
        of their own, never on the writer's."""
        settings = {"max_execution_time": ANALYST_QUERY_S, "readonly": 1}
        result = self.client.query(sql, settings=settings)
        return list(result.column_names), [tuple(row) for row in result.result_rows]


def decision_row(decision: Decision) -> list[Any]:
    return [
        decision.event_id,
        decision.event_kind.value,
        decision.event_type,
        decision.subject_type.value,
        decision.subject_id,
        decision.user_id,
        decision.score,
        decision.band.value,
        decision.decision.value,
        [r.code for r in decision.reasons],
        [r.points for r in decision.reasons],
        [a.value for a in decision.actions],
        decision.rule_version,
        decision.event_occurred_at,
        decision.decided_at,
        max(0, decision.latency_ms),
        _millis(decision.decided_at),
        decision.model_version,
        decision.model_probability,
    ]


def shadow_row(shadow: ShadowDecision) -> list[Any]:
    return [
        shadow.event_id,
        shadow.event_kind.value,
        shadow.subject_id,
        shadow.event_occurred_at,
        shadow.amount_cents,
        shadow.champion_decision.value,
        shadow.champion_score,
        shadow.champion_version,
        shadow.challenger_decision.value,
        shadow.challenger_score,
        shadow.challenger_version,
        shadow.challenger_reasons,
    ]


def event_row(event: InputEvent) -> list[Any]:
    amount: int | None = None
    channel: str | None = None
    match event:
        case TransactionEvent():
            kind, kind_type, user = "transaction", event.tx_type.value, event.user_id
            amount = event.amount_cents
            channel = event.channel.value if event.channel else None
        case LoginEvent():
            kind, kind_type, user = "login", event.method.value, event.user_id
        case GiftEvent():
            kind, kind_type, user = "gift", event.event_type.value, event.giver_user_id
            amount = event.amount_cents
    return [
        event.event_id,
        kind,
        kind_type,
        user,
        amount,
        event.country,
        channel,
        event.occurred_at,
    ]


def case_row(case: Case) -> list[Any]:
    return [
        case.case_id,
        case.subject_type.value,
        case.subject_id,
        case.status.value,
        case.priority.value,
        case.assignee,
        case.event_ids,
        case.reason_codes,
        case.opened_at,
        case.updated_at,
        case.closed_at,
        case.outcome.value if case.outcome else None,
        case.version,
    ]


def label_row(label: Label) -> list[Any]:
    return [
        label.label_id,
        label.subject_type.value,
        label.subject_id,
        label.is_fraud,
        label.event_ids,
        label.labelled_at,
    ]


def alert_row(alert: Alert) -> list[Any]:
    return [
        alert.alert_id,
        alert.rule,
        alert.severity,
        alert.channels,
        alert.message,
        alert.subject_id,
        alert.event_id,
        alert.created_at,
    ]


def batch_row(batch: AuditBatch) -> list[Any]:
    return [
        batch.batch_id,
        batch.chain,
        batch.first_sequence,
        batch.last_sequence,
        batch.count,
        batch.root,
        batch.previous_root,
        batch.closed_at,
    ]


def audit_row(record: AuditRecord) -> list[Any]:
    body = json.dumps(record.model_dump(mode="json", exclude={"sealed_pii"}), sort_keys=True)
    return [
        record.audit_id,
        record.timestamp,
        record.action,
        record.actor.type.value,
        record.actor.id,
        record.chain,
        record.sequence,
        body,
    ]


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def view_statements() -> list[tuple[str, str]]:
    """The dashboard views (``sinks/views.sql``): name and SELECT."""
    text = (Path(__file__).parent / "views.sql").read_text()
    statements = []
    for block in text.split(";"):
        lines = [line for line in block.splitlines() if not line.strip().startswith("--")]
        sql = "\n".join(lines).strip()
        if sql:
            name, _, select = sql.partition("\n")
            statements.append((name.removeprefix("VIEW ").strip(), select.strip()))
    return statements
