"""Decisions explained and measured from a real chDB store: a stored decision reads back whole
(reasons with details and points, features, versions), a store made before those columns is
upgraded, and the fraud metrics equal the reference computations (``engine.metrics``,
``atalaia.measure``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atalaia.broker import free_port
from atalaia.measure import percentile
from atalaia.reports import Section, metrics_sections
from config.settings import Settings
from engine.explain import explain_decision
from engine.metrics import auc_roc, confusion
from schemas.models import Case, Decision, Label, Reason
from sinks.clickhouse import (
    AnalyticsStore,
    case_row,
    connect,
    decision_of_row,
    decision_row,
    label_row,
    stored_decision_sql,
)
from tests.integration.helpers import run_atalaia

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AnalyticsStore]:
    analytics = AnalyticsStore(connect(str(tmp_path / "ch")))
    analytics.ensure_schema()
    yield analytics
    analytics.client.close()  # one embedded engine per process: the next test opens its own


def _query(store: AnalyticsStore) -> Any:
    def query(sql: str) -> tuple[list[str], list[list[Any]]]:
        columns, rows = store.query_read_only(sql)
        return columns, [list(row) for row in rows]

    return query


def _explained_decision() -> Decision:
    return Decision(
        event_id="tx-42",
        event_kind="transaction",
        event_type="CRYPTO_SWAP",
        subject_type="user",
        subject_id="u-7",
        user_id="u-7",
        score=100,
        band="CRITICAL",
        decision="BLOCK",
        reasons=[
            Reason(code="VELOCITY_RAPID_SUCCESSION", points=5, detail="2 in 5m"),
            Reason(
                code="BLACKLIST_LIST_HIT",
                points=100,
                detail="block-list hits: wallet 0x7f36...be1b CRITICAL (OFAC)",
            ),
            Reason(code="LIST_SEVERITY_BLOCK", points=0, detail="a CRITICAL hit blocks"),
        ],
        features={
            "tx.count.1h": 2,
            "list.block.wallet.CRITICAL.OFAC.0x7f36...be1b": 1,
            "subject.blocked": 0,
            "entity.blocked": 1,
            "ml.amount_cents": 150000,
        },
        actions=["INTERNAL_ALERT", "FREEZE_ACCOUNT"],
        user_message=None,
        rule_version="2026.12.2",
        event_occurred_at=AT,
        decided_at=AT + timedelta(milliseconds=12),
        latency_ms=12,
        model_version="online-3.7",
        model_probability=0.25,
        model_anomaly=0.5,
    )


def test_a_stored_decision_reads_back_whole_and_explains_itself(store: AnalyticsStore) -> None:
    decision = _explained_decision()
    store.insert("decisions", [decision_row(decision)] * 2)  # re-delivered: one row
    _, rows = store.query_read_only(stored_decision_sql(decision.event_id))
    assert len(rows) == 1
    read = decision_of_row(rows[0])
    assert read == decision.model_copy(update={"label_entities": []})
    explained = explain_decision(read)
    assert [r["code"] for r in explained["reasons"]][:2] == [
        "BLACKLIST_LIST_HIT",
        "VELOCITY_RAPID_SUCCESSION",
    ]
    assert explained["points_total"] == 105 and explained["score"] == 100
    assert explained["list_hits"] == [
        {
            "list": "block",
            "entity_type": "wallet",
            "severity": "CRITICAL",
            "source": "OFAC",
            "masked_value": "0x7f36...be1b",
            "matches": 1,
        }
    ]
    assert explained["blocks"]["entity_blocked"] and not explained["blocks"]["account_frozen"]
    assert explained["features"]["velocity"] == {"tx.count.1h": 2}
    assert explained["features"]["model"] == {"ml.amount_cents": 150000}
    assert explained["model"] == {"version": "online-3.7", "probability": 0.25, "anomaly": 0.5}
    assert explained["actions"] == ["INTERNAL_ALERT", "FREEZE_ACCOUNT"]
    with pytest.raises(ValueError):
        stored_decision_sql("x' OR 1=1 --")
    assert store.query_read_only(stored_decision_sql("unknown"))[1] == []


def test_a_store_made_before_details_and_features_were_kept_is_upgraded(tmp_path: Path) -> None:
    old = AnalyticsStore(connect(str(tmp_path / "old")))
    try:
        old.client.command(
            "CREATE TABLE decisions (event_id String, event_kind LowCardinality(String), "
            "event_type LowCardinality(String), subject_type LowCardinality(String), "
            "subject_id String, user_id Nullable(String), score UInt8, "
            "band LowCardinality(String), "
            "decision LowCardinality(String), reason_codes Array(LowCardinality(String)), "
            "reason_points Array(Int16), actions Array(LowCardinality(String)), "
            "rule_version LowCardinality(String), event_occurred_at DateTime64(3, 'UTC'), "
            "decided_at DateTime64(3, 'UTC'), latency_ms UInt32, version UInt64) "
            "ENGINE = ReplacingMergeTree(version) ORDER BY event_id"
        )
        old.client.command(
            "INSERT INTO decisions VALUES ('old-1', 'transaction', 'PIX_TRANSFER', 'user', 'u1', "
            "'u1', 40, 'MEDIUM', 'REVIEW', ['AMOUNT_HIGH_VALUE'], [40], [], 'v1', "
            "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.010', 10, 1)"
        )
        old.ensure_schema()
        _, rows = old.query_read_only(stored_decision_sql("old-1"))
        read = decision_of_row(rows[0])
        assert read.reasons == [Reason(code="AMOUNT_HIGH_VALUE", points=40, detail="")]
        assert read.features == {} and read.model_version is None
        old.insert("decisions", [decision_row(_explained_decision())])
        assert old.query_read_only(stored_decision_sql("tx-42"))[1]
    finally:
        old.client.close()  # one embedded engine per process


def _as_dicts(section: Section) -> list[dict[str, Any]]:
    return [dict(zip(section.columns, row, strict=True)) for row in section.rows]


def test_fraud_metrics_equal_the_reference_computations(store: AnalyticsStore) -> None:
    rng = random.Random(7)
    decisions, truth = [], {}
    for n in range(240):
        kind = "transaction" if n % 3 else "login"
        day = AT + timedelta(days=n % 2, minutes=n % 50, seconds=n)
        is_fraud = rng.random() < 0.3
        score = min(100, max(0, int(rng.gauss(70 if is_fraud else 25, 20))))
        verdict = "BLOCK" if score > 85 else "REVIEW" if score >= 30 else "ALLOW"
        severity = rng.choice(["", "", "", "HIGH", "CRITICAL"])
        features = {f"list.block.user.{severity}.MANUAL.***{n}": 1} if severity else {}
        latency = rng.randint(1, 400)
        decisions.append(
            Decision(
                event_id=f"m{n}",
                event_kind=kind,
                event_type="PIX_TRANSFER" if kind == "transaction" else "LOGIN",
                subject_type="user",
                subject_id=f"u{n % 17}",
                user_id=f"u{n % 17}",
                score=score,
                band="LOW",
                decision=verdict,
                features=features,
                rule_version="v",
                event_occurred_at=day,
                decided_at=day + timedelta(milliseconds=latency),
                latency_ms=latency,
                model_version="online-3.1" if kind == "transaction" else None,
                model_probability=score / 100 if kind == "transaction" else None,
            )
        )
        if n % 4:  # three of four get a label
            truth[f"m{n}"] = is_fraud
    store.insert("decisions", [decision_row(d) for d in decisions])
    frauds = [e for e, fraud in truth.items() if fraud]
    legit = [e for e, fraud in truth.items() if not fraud]
    labels = [
        Label(
            label_id=f"l{i}",
            subject_type="user",
            subject_id="u",
            is_fraud=is_fraud,
            event_ids=chunk,
            labelled_at=AT,
            source="case",
        )
        for i, (is_fraud, chunk) in enumerate(
            [(True, frauds[:20]), (True, frauds[20:]), (False, legit)]
        )
    ]
    store.insert("labels", [label_row(label) for label in labels])
    closed = Case(
        case_id="c1",
        subject_type="user",
        subject_id="u1",
        status="closed",
        priority="HIGH",
        opened_at=AT,
        updated_at=AT,
        closed_at=AT + timedelta(hours=1),
        outcome="legitimate",
        version=3,
    )
    store.insert("cases", [case_row(closed)])

    sections = metrics_sections(_query(store), "2026-11-20", "2026-11-21")
    quality, cases, latency, throughput, hits = (_as_dicts(s) for s in sections)
    assert len(quality) == 4  # two days, two flows
    for row in quality:
        group = [
            d
            for d in decisions
            if d.event_kind.value == row["flow"]
            and d.event_occurred_at.date().isoformat() == str(row["day"])
        ]
        labelled = [d for d in group if d.event_id in truth]
        flags = [d.decision.value != "ALLOW" for d in labelled]
        outcomes = [truth[d.event_id] for d in labelled]
        expected = confusion(flags, outcomes)
        tp, fp = expected.true_positives, expected.false_positives
        fn, tn = expected.false_negatives, expected.true_negatives
        assert (row["decided"], row["labelled"]) == (len(group), len(labelled))
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (tp, fp, fn, tn)
        assert row["precision"] == pytest.approx(expected.precision, abs=1e-4)
        assert row["recall"] == pytest.approx(expected.recall, abs=1e-4)
        assert row["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-4)
        assert row["fpr"] == pytest.approx(fp / (fp + tn), abs=1e-4)
        scores = [float(d.score) for d in labelled]
        assert row["auc_score"] == pytest.approx(auc_roc(scores, outcomes), abs=1e-4)
        if row["flow"] == "transaction":
            probabilities = [d.model_probability or 0.0 for d in labelled]
            assert row["auc_model"] == pytest.approx(auc_roc(probabilities, outcomes), abs=1e-4)
        else:
            assert row["auc_model"] is None
    assert [(c["closed"], c["legitimate"], c["false_positive_share"]) for c in cases] == [
        (1, 1, 1.0)
    ]
    for row in latency:
        ms = [
            d.latency_ms
            for d in decisions
            if d.event_kind.value == row["flow"]
            and d.decided_at.date().isoformat() == str(row["day"])
        ]
        assert row["decisions"] == len(ms)
        assert (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"]) == (
            percentile(ms, 0.5),
            percentile(ms, 0.95),
            percentile(ms, 0.99),
            max(ms),
        )
    assert sum(row["decisions"] for row in throughput) == len(decisions)
    assert all(row["per_second_peak_minute"] >= row["per_second_active"] for row in throughput)
    by_severity: dict[str, int] = {}
    for d in decisions:
        for name in d.features:
            severity = name.split(".")[3]
            by_severity[severity] = by_severity.get(severity, 0) + 1
    counted: dict[str, int] = {}
    for row in hits:
        counted[row["severity"]] = counted.get(row["severity"], 0) + row["decisions"]
    assert counted == by_severity


def test_the_metrics_report_from_the_command_line(
    tmp_path: Path, engine_settings: Settings
) -> None:
    target = tmp_path / "ch"
    store = AnalyticsStore(connect(str(target)))
    store.ensure_schema()
    store.insert("decisions", [decision_row(_explained_decision())])
    store.client.close()
    settings = engine_settings.model_copy(
        update={"analytics_target": str(target), "sink_port": free_port()}
    )
    done = run_atalaia(settings, "report", "metrics", "--date", "2026-11-20", "--to", "2026-11-21")
    assert done.returncode == 0, done.stderr
    assert "# Atalaia metrics report, 2026-11-20" in done.stdout
    assert "| 2026-11-20 | transaction | CRITICAL | 1 | 1 |" in done.stdout  # the list hit
    assert "| 2026-11-20 | transaction | 1 | 12 | 12 | 12 | 12 |" in done.stdout  # latency
    backwards = run_atalaia(
        settings, "report", "metrics", "--date", "2026-11-21", "--to", "2026-11-20"
    )
    assert backwards.returncode == 2 and "--to is before --date" in backwards.stderr
