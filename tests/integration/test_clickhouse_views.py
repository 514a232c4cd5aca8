"""Every dashboard view on real chDB against a known input, and re-delivered rows counted once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atalaia.broker import free_port
from atalaia.supervise import settings_env
from config.settings import Settings
from schemas.models import Alert, AuditBatch, Case, Decision, Label, Reason, ShadowDecision
from sinks.clickhouse import (
    AnalyticsStore,
    alert_row,
    batch_row,
    case_row,
    connect,
    decision_row,
    event_row,
    label_row,
    shadow_row,
    view_statements,
)
from tests import factories

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _decision(n: int, verdict: str, score: int, codes: tuple[str, ...], latency: int) -> Decision:
    return Decision(
        event_id=f"e{n}",
        event_kind="transaction",
        event_type="PIX_TRANSFER",
        subject_type="user",
        subject_id=f"u{n}",
        user_id=f"u{n}",
        score=score,
        band="LOW" if score < 30 else "CRITICAL",
        decision=verdict,
        reasons=[Reason(code=c, points=10, detail="d") for c in codes],
        rule_version="v",
        event_occurred_at=AT + timedelta(minutes=n),
        decided_at=AT + timedelta(minutes=n, milliseconds=latency),
        latency_ms=latency,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AnalyticsStore]:
    analytics = AnalyticsStore(connect(str(tmp_path / "ch")))
    analytics.ensure_schema()
    yield analytics
    analytics.client.close()  # one embedded engine per process: the next test opens its own


def _load_known(store: AnalyticsStore) -> None:
    decisions = [
        _decision(0, "ALLOW", 5, (), 10),
        _decision(1, "ALLOW", 12, ("VELOCITY_UNUSUAL_HOUR",), 20),
        _decision(2, "REVIEW", 55, ("BLACKLIST_LIST_HIT",), 30),
        _decision(3, "BLOCK", 100, ("BLACKLIST_LIST_HIT", "GEO_TOR_VPN"), 40),
    ]
    events = [
        factories.transaction(
            event_id=f"e{n}", amount_cents=1_000 * (n + 1), country="BR" if n < 3 else "IR"
        )
        for n in range(4)
    ]
    cases = [
        Case(
            case_id="c1",
            subject_type="user",
            subject_id="u2",
            status="closed",
            priority="HIGH",
            event_ids=["e2"],
            opened_at=AT,
            updated_at=AT,
            closed_at=AT,
            outcome="legitimate",
            version=3,
        ),
        Case(
            case_id="c2",
            subject_type="user",
            subject_id="u3",
            status="closed",
            priority="CRITICAL",
            event_ids=["e3"],
            opened_at=AT,
            updated_at=AT,
            closed_at=AT,
            outcome="fraud_confirmed",
            version=2,
        ),
        Case(
            case_id="c3",
            subject_type="user",
            subject_id="u9",
            status="open",
            priority="MEDIUM",
            opened_at=AT,
            updated_at=AT,
            version=1,
        ),
    ]
    label = Label(
        label_id="c2",
        subject_type="user",
        subject_id="u3",
        is_fraud=True,
        event_ids=["e3"],
        labelled_at=AT,
        source="case",
    )
    for _ in range(2):  # every row delivered twice: counted once
        store.insert("decisions", [decision_row(d) for d in decisions])
        store.insert("events", [event_row(e) for e in events])
        store.insert("cases", [case_row(c) for c in cases])
        store.insert("labels", [label_row(label)])
    alert = Alert(
        alert_id="blacklist_hit_critical-e3",
        rule="blacklist_hit_critical",
        severity="CRITICAL",
        channels=["slack"],
        message="Critical blacklist match detected",
        subject_id="u3",
        event_id="e3",
        dedupe_key="k",
        created_at=AT + timedelta(minutes=3),
    )
    store.insert("alerts", [alert_row(alert)])


def test_views_give_the_known_numbers(store: AnalyticsStore) -> None:
    _load_known(store)

    def rows(view: str) -> list[tuple[object, ...]]:
        return store.query_read_only(f"SELECT * FROM {view}")[1]

    assert [r[1:] for r in rows("decision_mix")] == [("ALLOW", 2), ("BLOCK", 1), ("REVIEW", 1)]
    assert [r[1:] for r in rows("fraud_rate_daily")] == [(4, 1, 0.25)]
    assert rows("false_positive_rate") == [(1, 1, 0.5)]
    (latency,) = rows("latency_quantiles")
    assert latency[1] == 4 and 20 <= latency[2] <= 30 and 39 <= latency[3] <= 40
    assert [r[1] for r in rows("blacklist_hits_per_hour")] == [2]
    assert rows("top_reasons")[0] == ("BLACKLIST_LIST_HIT", 2)
    assert rows("active_cases") == [("MEDIUM", "open", 1)]
    assert [r[1:] for r in rows("amount_blocked_daily")] == [(4_000, 1)]
    assert rows("geo_distribution") == [("BR", "ALLOW", 2), ("BR", "REVIEW", 1), ("IR", "BLOCK", 1)]
    assert rows("score_distribution") == [(0, 1), (10, 1), (50, 1), (100, 1)]
    assert sum(r[2] for r in rows("transactions_per_minute")) == 4
    assert {name for name, _ in view_statements()} >= {"decision_mix", "score_distribution"}


def test_reports_from_the_store_have_the_right_totals(
    tmp_path: Path, engine_settings: Settings
) -> None:
    target = tmp_path / "ch"
    store = AnalyticsStore(connect(str(target)))
    store.ensure_schema()
    _load_known(store)
    store.client.close()
    settings = engine_settings.model_copy(
        update={"analytics_target": str(target), "sink_port": free_port()}
    )
    env = {**os.environ, **settings_env(settings)}

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "atalaia", "report", *args, "--date", "2026-11-20"]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=120, check=False
        )

    out = tmp_path / "reports"
    daily = report("daily", "--out", str(out))
    assert daily.returncode == 0, daily.stderr
    text = (out / "report-daily-2026-11-20.md").read_text()
    assert "| transaction | ALLOW | 2 |" in text and "| transaction | BLOCK | 1 |" in text
    assert "| 10 | 4 | 1 | 0.25 | 1 | 0.25 |" in text  # hour, decisions, blocked, rates
    assert "| 1 | 4000 |" in text  # one blocked, R$ 40,00
    png = (out / "report-daily-2026-11-20.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    alerts = report("alerts", "--format", "csv")
    assert "Alerts by rule,blacklist_hit_critical,CRITICAL,1" in alerts.stdout
    performance = report("performance")
    assert "| 10 | 4 |" in performance.stdout
    coaf = report("coaf", "--format", "json")
    (filed,) = json.loads(coaf.stdout)
    assert (filed["subject"], filed["blocked_cents"], filed["case_ids"]) == ("u3", 4000, "c2")


def test_audit_batches_are_stored_with_their_roots(store: AnalyticsStore) -> None:
    batch = AuditBatch(
        batch_id="0:0-3",
        chain=0,
        first_sequence=0,
        last_sequence=3,
        count=4,
        root="ab" * 32,
        previous_root=None,
        closed_at=AT,
    )
    store.insert("audit_batches", [batch_row(batch)])
    store.insert("audit_batches", [batch_row(batch)])  # re-delivered
    rows = store.query_read_only("SELECT batch_id, count, root FROM audit_batches FINAL")[1]
    assert rows == [("0:0-3", 4, "ab" * 32)]


def test_shadow_decisions_are_compared_on_the_labelled_outcomes(store: AnalyticsStore) -> None:
    def shadow(n: int, champion: str, challenger: str) -> ShadowDecision:
        return ShadowDecision(
            event_id=f"e{n}",
            event_kind="transaction",
            subject_id=f"u{n}",
            event_occurred_at=AT,
            amount_cents=1_000,
            champion_decision=champion,
            champion_score=10,
            champion_version="2026.11.7/online-1.4",
            challenger_decision=challenger,
            challenger_score=40,
            challenger_version="candidate/online-1.4",
            challenger_reasons=["MODEL_FRAUD_PROBABILITY"],
        )

    shadows = [
        shadow(1, "ALLOW", "REVIEW"),  # labelled fraud: the challenger catches it
        shadow(2, "ALLOW", "REVIEW"),  # labelled legitimate: a challenger false positive
        shadow(3, "ALLOW", "ALLOW"),  # no label
    ]
    labels = [
        Label(
            label_id=f"l{n}",
            subject_type="user",
            subject_id=f"u{n}",
            is_fraud=fraud,
            event_ids=[f"e{n}"],
            labelled_at=AT,
            source="case",
        )
        for n, fraud in ((1, True), (2, False))
    ]
    for _ in range(2):  # re-delivered: counted once
        store.insert("shadow_decisions", [shadow_row(s) for s in shadows])
        store.insert("labels", [label_row(label) for label in labels])
    columns, rows = store.query_read_only("SELECT * FROM shadow_comparison")
    [row] = [dict(zip(columns, r, strict=True)) for r in rows]
    assert (row["events"], row["agree"], row["labelled_events"], row["frauds"]) == (3, 1, 2, 1)
    assert (row["champion_tp"], row["champion_fp"]) == (0, 0)
    assert (row["challenger_tp"], row["challenger_fp"]) == (1, 1)
    assert row["challenger_precision"] == 0.5 and row["challenger_recall"] == 1.0
    assert row["champion_recall"] == 0.0
