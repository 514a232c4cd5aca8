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
import importlib.util
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from pydantic import TypeAdapter

from engine.admission import account_of
from schemas.models import (
    Alert,
    AuditBatch,
    AuditRecord,
    Case,
    Decision,
    GiftEvent,
    Identifier,
    InputEvent,
    Label,
    LoginEvent,
    Reason,
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
            model_probability Nullable(Float64),
            reason_details Array(String),
            features Map(LowCardinality(String), Int64),
            model_anomaly Nullable(Float64),
            user_message Nullable(String)
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
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS reason_details Array(String)",
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS features Map(LowCardinality(String), Int64)",
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS model_anomaly Nullable(Float64)",
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS user_message Nullable(String)",
)
"""Columns added after a table's first release: a store made by an earlier version gets them."""


class StoreUnavailable(Exception):
    """The analytics store cannot be opened here; one line for the operator."""


def connect(target: str) -> Client:
    """A client for ``target``: a chDB directory (a path, or ``chdb:///path``; needs the
    ``analytics`` extra) or a server URL (``http://host:8123`` ...)."""
    embedded = "://" not in target or target.startswith("chdb://")
    if embedded and importlib.util.find_spec("chdb") is None:
        raise StoreUnavailable(
            "an embedded analytics store needs chDB: pip install 'atalaia[analytics]', or "
            "set ATALAIA_ANALYTICS_TARGET to a ClickHouse server URL"
        )
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
        [r.detail for r in decision.reasons],
        decision.features,
        decision.model_anomaly,
        decision.user_message,
    ]


_STORED_DECISION = """
SELECT event_id, event_kind, event_type, subject_type, subject_id, user_id, score, band,
       decision, toJSONString(reason_codes), toJSONString(reason_points),
       toJSONString(reason_details), toJSONString(features), toJSONString(actions),
       rule_version, toUnixTimestamp64Milli(event_occurred_at),
       toUnixTimestamp64Milli(decided_at), latency_ms, model_version, model_probability,
       model_anomaly, user_message
FROM decisions FINAL WHERE event_id = '{event_id}' LIMIT 1"""


def stored_decision_sql(event_id: str) -> str:
    """The query reading one decision back whole (every value a plain JSON one, whichever
    way the query travels). ``event_id`` must be a valid event id (no quote can be in it)."""
    _EVENT_ID.validate_python(event_id)  # ValidationError for anything else
    return _STORED_DECISION.format(event_id=event_id)


_EVENT_ID: TypeAdapter[str] = TypeAdapter(Identifier)


def decision_of_row(row: Sequence[Any]) -> Decision:
    """The Decision a ``stored_decision_sql`` row holds (details are empty for a decision
    stored before they were kept)."""
    (
        event_id,
        event_kind,
        event_type,
        subject_type,
        subject_id,
        user_id,
        score,
        band,
        verdict,
        codes,
        points,
        details,
        features,
        actions,
        rule_version,
        occurred_ms,
        decided_ms,
        latency_ms,
        model_version,
        probability,
        anomaly,
        user_message,
    ) = row
    codes, points, details = json.loads(codes), json.loads(points), json.loads(details)
    details = details if len(details) == len(codes) else [""] * len(codes)
    return Decision.model_validate(
        {
            "event_id": event_id,
            "event_kind": event_kind,
            "event_type": event_type,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "user_id": user_id,
            "score": int(score),
            "band": band,
            "decision": verdict,
            "reasons": [
                Reason(code=c, points=int(p), detail=d)
                for c, p, d in zip(codes, points, details, strict=True)
            ],
            "features": {name: int(value) for name, value in json.loads(features).items()},
            "actions": json.loads(actions),
            "user_message": user_message,
            "rule_version": rule_version,
            "event_occurred_at": int(occurred_ms),
            "decided_at": int(decided_ms),
            "latency_ms": int(latency_ms),
            "model_version": model_version,
            "model_probability": _float(probability),
            "model_anomaly": _float(anomaly),
        }
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


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
            kind, kind_type, user = "login", event.method.value, account_of(event)
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
