"""``atalaia report daily|alerts|performance|metrics|coaf``: reports from the analysts' store.

Markdown (default) or CSV; the daily report also draws a PNG of the day (decisions per hour
and the share blocked, with confirmed fraud where case labels exist). The metrics report is
the detection quality per flow and day (precision, recall, F1, false-positive rate from the
labels, which closed cases publish; AUC where scores and labels exist), the closed cases,
latency percentiles, throughput and list hits. The COAF-style export
lists, per subject with confirmed fraud or blocked money in the period, what a compliance
officer files: period, amounts, counts, reasons and case ids. User ids are internal ids (no
name, document or contact), so nothing else needs masking.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from atalaia.analytics import AnalyticsError, run_query
from config.settings import Settings


@dataclass(frozen=True)
class Section:
    title: str
    columns: list[str]
    rows: list[list[Any]]


Query = Callable[[str], tuple[list[str], list[list[Any]]]]
"""Runs SQL on the analysts' store: ``partial(run_query, settings)`` (the API's never opens
an embedded store itself: it asks the sink)."""


def _section(query: Query, title: str, sql: str) -> Section:
    columns, rows = query(sql)
    return Section(title, columns, [list(row) for row in rows])


def daily_sections(query: Query, day: str) -> list[Section]:
    on_day = f"toDate(event_occurred_at) = toDate('{day}')"
    return [
        _section(
            query,
            "Decisions",
            f"SELECT event_kind, decision, count() AS decisions FROM decisions FINAL "
            f"WHERE {on_day} GROUP BY event_kind, decision ORDER BY event_kind, decision",
        ),
        _section(
            query,
            "Per hour",
            f"SELECT toHour(event_occurred_at) AS hour, count() AS decisions, "
            f"countIf(decision = 'BLOCK') AS blocked, round(blocked / decisions, 4) AS block_rate, "
            f"countIf(event_id IN (SELECT arrayJoin(event_ids) FROM labels FINAL WHERE is_fraud)) "
            f"AS confirmed_fraud, round(confirmed_fraud / decisions, 4) AS fraud_rate "
            f"FROM decisions FINAL WHERE {on_day} GROUP BY hour ORDER BY hour",
        ),
        _section(
            query,
            "Amount blocked",
            f"SELECT count() AS blocked, ifNull(sum(e.amount_cents), 0) AS amount_cents "
            f"FROM (SELECT event_id FROM decisions FINAL WHERE decision = 'BLOCK' AND {on_day}) "
            f"AS d LEFT JOIN (SELECT event_id, amount_cents FROM events FINAL) AS e USING event_id",
        ),
        _section(
            query,
            "Top reasons",
            f"SELECT reason, count() AS decisions FROM decisions FINAL ARRAY JOIN reason_codes "
            f"AS reason WHERE {on_day} GROUP BY reason ORDER BY decisions DESC, reason LIMIT 10",
        ),
        _section(
            query,
            "Alerts",
            f"SELECT rule, severity, count() AS alerts FROM alerts FINAL "
            f"WHERE toDate(created_at) = toDate('{day}') GROUP BY rule, severity ORDER BY rule",
        ),
    ]


def alerts_sections(query: Query, day: str) -> list[Section]:
    on_day = f"toDate(created_at) = toDate('{day}')"
    return [
        _section(
            query,
            "Alerts by rule",
            f"SELECT rule, severity, count() AS alerts FROM alerts FINAL WHERE {on_day} "
            f"GROUP BY rule, severity ORDER BY rule",
        ),
        _section(
            query,
            "Alerts",
            f"SELECT created_at, rule, severity, message FROM alerts FINAL WHERE {on_day} "
            f"ORDER BY created_at LIMIT 1000",
        ),
    ]


def performance_sections(query: Query, day: str) -> list[Section]:
    return [
        _section(
            query,
            "Latency per hour",
            f"SELECT toHour(decided_at) AS hour, count() AS decisions, "
            f"quantile(0.5)(latency_ms) AS p50_ms, quantile(0.99)(latency_ms) AS p99_ms, "
            f"max(latency_ms) AS max_ms FROM decisions FINAL "
            f"WHERE toDate(decided_at) = toDate('{day}') GROUP BY hour ORDER BY hour",
        ),
    ]


DAY_REPORTS: dict[str, Callable[[Query, str], list[Section]]] = {
    "daily": daily_sections,
    "alerts": alerts_sections,
    "performance": performance_sections,
}
"""The seed's reports of one day, by name."""


def nearest_rank(column: str, q: float) -> str:
    """SQL for the nearest-rank percentile of ``column`` in a group (``atalaia.measure``'s;
    ClickHouse's quantileExact takes the rank above it)."""
    return (
        f"arrayElement(arraySort(groupArray({column})), "
        f"toUInt64(greatest(1, ceil(round({q} * count(), 9)))))"
    )


_LABELLED = (
    "LEFT JOIN (SELECT arrayJoin(event_ids) AS event_id, toUInt8(max(is_fraud)) AS is_fraud, "
    "toUInt8(1) AS labelled FROM labels FINAL GROUP BY event_id) AS l USING event_id"
)
"""Each decided event's label, when one names it (a case closed with an outcome, or an
imported label): fraud if any label says so."""


def metrics_sections(query: Query, start: str, end: str) -> list[Section]:
    """Detection quality and operations from ``start`` to ``end`` (UTC days, inclusive).
    Flagged = REVIEW or BLOCK; only labelled events count in precision, recall, F1 and FPR."""
    events = f"toDate(event_occurred_at) BETWEEN toDate('{start}') AND toDate('{end}')"
    decided = f"toDate(decided_at) BETWEEN toDate('{start}') AND toDate('{end}')"
    auc = (
        "if(frauds > 0 AND frauds < labelled, round(arrayAUC(groupArrayIf({score}, "
        "l.labelled = 1{extra}), groupArrayIf(l.is_fraud, l.labelled = 1{extra})), 4), NULL)"
    )
    rules_auc = auc.format(score="toFloat64(d.score)", extra="")
    model_present = " AND d.model_probability IS NOT NULL"
    model_auc = auc.format(score="ifNull(d.model_probability, 0)", extra=model_present)
    return [
        _section(
            query,
            "Detection quality",
            "SELECT toDate(d.event_occurred_at) AS day, d.event_kind AS flow, "
            "count() AS decided, countIf(l.labelled = 1) AS labelled, "
            "countIf(l.is_fraud = 1) AS frauds, "
            "countIf(l.labelled = 1 AND d.decision != 'ALLOW' AND l.is_fraud = 1) AS tp, "
            "countIf(l.labelled = 1 AND d.decision != 'ALLOW' AND l.is_fraud = 0) AS fp, "
            "countIf(l.labelled = 1 AND d.decision = 'ALLOW' AND l.is_fraud = 1) AS fn, "
            "countIf(l.labelled = 1 AND d.decision = 'ALLOW' AND l.is_fraud = 0) AS tn, "
            "round(tp / nullIf(tp + fp, 0), 4) AS precision, "
            "round(tp / nullIf(tp + fn, 0), 4) AS recall, "
            "round(2 * tp / nullIf(2 * tp + fp + fn, 0), 4) AS f1, "
            "round(fp / nullIf(fp + tn, 0), 4) AS fpr, "
            f"{rules_auc} AS auc_score, "
            f"if(countIf(l.labelled = 1{model_present}) > 0, {model_auc}, NULL) AS auc_model "
            "FROM (SELECT event_id, event_kind, decision, score, model_probability, "
            f"event_occurred_at FROM decisions FINAL WHERE {events}) AS d {_LABELLED} "
            "GROUP BY day, flow ORDER BY day, flow",
        ),
        _section(
            query,
            "Closed cases",
            "SELECT toDate(closed_at) AS day, count() AS closed, "
            "countIf(outcome = 'fraud_confirmed') AS fraud_confirmed, "
            "countIf(outcome = 'legitimate') AS legitimate, "
            "round(legitimate / nullIf(legitimate + fraud_confirmed, 0), 4) "
            "AS false_positive_share FROM cases FINAL WHERE status = 'closed' AND "
            f"toDate(closed_at) BETWEEN toDate('{start}') AND toDate('{end}') "
            "GROUP BY day ORDER BY day",
        ),
        _section(
            query,
            "Latency",
            "SELECT toDate(decided_at) AS day, event_kind AS flow, count() AS decisions, "
            f"{nearest_rank('latency_ms', 0.5)} AS p50_ms, "
            f"{nearest_rank('latency_ms', 0.95)} AS p95_ms, "
            f"{nearest_rank('latency_ms', 0.99)} AS p99_ms, max(latency_ms) AS max_ms "
            f"FROM decisions FINAL WHERE {decided} GROUP BY day, flow ORDER BY day, flow",
        ),
        _section(
            query,
            "Throughput",
            "SELECT day, flow, sum(n) AS decisions, count() AS active_minutes, "
            "round(decisions / (active_minutes * 60), 2) AS per_second_active, "
            "round(max(n) / 60, 2) AS per_second_peak_minute FROM ("
            "SELECT toDate(decided_at) AS day, event_kind AS flow, "
            "toStartOfMinute(decided_at) AS minute, count() AS n FROM decisions FINAL "
            f"WHERE {decided} GROUP BY day, flow, minute) GROUP BY day, flow ORDER BY day, flow",
        ),
        _section(
            query,
            "List hits",
            "SELECT toDate(event_occurred_at) AS day, event_kind AS flow, severity, "
            "count() AS decisions, countIf(decision = 'BLOCK') AS blocked FROM decisions FINAL "
            "ARRAY JOIN arrayDistinct(arrayMap(k -> splitByChar('.', k)[4], "
            "arrayFilter(k -> startsWith(k, 'list.block.'), mapKeys(features)))) AS severity "
            f"WHERE {events} GROUP BY day, flow, severity ORDER BY day, flow, severity",
        ),
    ]


def coaf_rows(query: Query, start: str, end: str) -> Section:
    """Subjects with confirmed fraud (closed cases) or blocked money in [start, end]."""
    period = f"toDate(event_occurred_at) BETWEEN toDate('{start}') AND toDate('{end}')"
    sql = (
        "SELECT d.user_id AS subject, "
        f"'{start}' AS period_from, '{end}' AS period_to, "
        "count() AS transactions, "
        "sumIf(e.amount_cents, d.decision = 'BLOCK') AS blocked_cents, "
        "sum(e.amount_cents) AS total_cents, "
        "arrayStringConcat(arraySort(groupUniqArrayArray(d.reason_codes)), ' ') AS reasons, "
        "arrayStringConcat(any(c.case_ids), ' ') AS case_ids "
        f"FROM (SELECT event_id, user_id, decision, reason_codes FROM decisions FINAL "
        f"WHERE {period} AND event_kind = 'transaction') AS d "
        "LEFT JOIN (SELECT event_id, amount_cents FROM events FINAL) AS e USING event_id "
        "LEFT JOIN (SELECT subject_id, groupArray(case_id) AS case_ids FROM cases FINAL "
        "WHERE outcome = 'fraud_confirmed' GROUP BY subject_id) AS c ON c.subject_id = d.user_id "
        "GROUP BY subject HAVING blocked_cents > 0 OR length(case_ids) > 0 ORDER BY subject"
    )
    return _section(query, "Suspicious activity (COAF)", sql)


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        if not section.rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(section.columns) + " |")
        lines.append("|" + "---|" * len(section.columns))
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in section.rows]
        lines.append("")
    return "\n".join(lines)


def render_csv(sections: list[Section]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for section in sections:
        writer.writerow(["section", *section.columns])
        writer.writerows([section.title, *row] for row in section.rows)
    return out.getvalue()


def daily_chart(section: Section, day: str, target: Path) -> Path:
    """Decisions per hour (bars) and the share blocked and confirmed as fraud (lines)."""
    try:
        import matplotlib
    except ImportError:
        raise AnalyticsError(
            "the daily chart needs matplotlib: pip install 'atalaia[reports]'"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_hour = {int(row[0]): row for row in section.rows}
    hours = list(range(24))
    decisions = [int(by_hour[h][1]) if h in by_hour else 0 for h in hours]
    blocked = [float(by_hour[h][3]) * 100 if h in by_hour else 0.0 for h in hours]
    fraud = [float(by_hour[h][5]) * 100 if h in by_hour else 0.0 for h in hours]
    figure, bars = plt.subplots(figsize=(10, 4))
    bars.bar(hours, decisions, color="#8ecae6", label="decisions")
    bars.set_xlabel("hour (UTC)")
    bars.set_ylabel("decisions")
    rates = bars.twinx()
    rates.plot(hours, blocked, color="#e85d04", marker="o", label="blocked %")
    rates.plot(hours, fraud, color="#d00000", marker="x", label="confirmed fraud %")
    rates.set_ylabel("%")
    figure.legend(loc="upper right")
    bars.set_title(f"Atalaia, {day}")
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def report_main(
    settings: Settings, kind: str, day: str, end: str | None, fmt: str, out: Path | None
) -> int:
    query = partial(run_query, settings)
    if kind == "coaf":
        section = coaf_rows(query, day, end or day)
        if fmt == "json":
            text = json.dumps(
                [dict(zip(section.columns, row, strict=True)) for row in section.rows],
                indent=2,
                default=str,
            )
        else:
            text = render_csv([section])
        _emit(text, out, f"coaf-{day}.{fmt}")
        return 0
    sections = (
        metrics_sections(query, day, end or day)
        if kind == "metrics"
        else DAY_REPORTS[kind](query, day)
    )
    text = (
        render_csv(sections)
        if fmt == "csv"
        else render_markdown(f"Atalaia {kind} report, {day}", sections)
    )
    _emit(text, out, f"report-{kind}-{day}.{'csv' if fmt == 'csv' else 'md'}")
    if kind == "daily" and out is not None:
        chart = daily_chart(sections[1], day, out / f"report-daily-{day}.png")
        print(f"chart: {chart}")
    return 0


def _emit(text: str, out: Path | None, name: str) -> None:
    if out is None:
        print(text)
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text)
    print(f"wrote {out / name}")
