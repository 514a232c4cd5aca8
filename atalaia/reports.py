"""``atalaia report daily|alerts|performance|coaf``: reports from the analysts' store.

Markdown (default) or CSV; the daily report also draws a PNG of the day (decisions per hour
and the share blocked, with confirmed fraud where case labels exist). The COAF-style export
lists, per subject with confirmed fraud or blocked money in the period, what a compliance
officer files: period, amounts, counts, reasons and case ids. User ids are internal ids (no
name, document or contact), so nothing else needs masking.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atalaia.analytics import run_query
from config.settings import Settings


@dataclass(frozen=True)
class Section:
    title: str
    columns: list[str]
    rows: list[list[Any]]


def _section(settings: Settings, title: str, sql: str) -> Section:
    columns, rows = run_query(settings, sql)
    return Section(title, columns, [list(row) for row in rows])


def daily_sections(settings: Settings, day: str) -> list[Section]:
    on_day = f"toDate(event_occurred_at) = toDate('{day}')"
    return [
        _section(
            settings,
            "Decisions",
            f"SELECT event_kind, decision, count() AS decisions FROM decisions FINAL "
            f"WHERE {on_day} GROUP BY event_kind, decision ORDER BY event_kind, decision",
        ),
        _section(
            settings,
            "Per hour",
            f"SELECT toHour(event_occurred_at) AS hour, count() AS decisions, "
            f"countIf(decision = 'BLOCK') AS blocked, round(blocked / decisions, 4) AS block_rate, "
            f"countIf(event_id IN (SELECT arrayJoin(event_ids) FROM labels FINAL WHERE is_fraud)) "
            f"AS confirmed_fraud, round(confirmed_fraud / decisions, 4) AS fraud_rate "
            f"FROM decisions FINAL WHERE {on_day} GROUP BY hour ORDER BY hour",
        ),
        _section(
            settings,
            "Amount blocked",
            f"SELECT count() AS blocked, ifNull(sum(e.amount_cents), 0) AS amount_cents "
            f"FROM (SELECT event_id FROM decisions FINAL WHERE decision = 'BLOCK' AND {on_day}) "
            f"AS d LEFT JOIN (SELECT event_id, amount_cents FROM events FINAL) AS e USING event_id",
        ),
        _section(
            settings,
            "Top reasons",
            f"SELECT reason, count() AS decisions FROM decisions FINAL ARRAY JOIN reason_codes "
            f"AS reason WHERE {on_day} GROUP BY reason ORDER BY decisions DESC, reason LIMIT 10",
        ),
        _section(
            settings,
            "Alerts",
            f"SELECT rule, severity, count() AS alerts FROM alerts FINAL "
            f"WHERE toDate(created_at) = toDate('{day}') GROUP BY rule, severity ORDER BY rule",
        ),
    ]


def alerts_sections(settings: Settings, day: str) -> list[Section]:
    on_day = f"toDate(created_at) = toDate('{day}')"
    return [
        _section(
            settings,
            "Alerts by rule",
            f"SELECT rule, severity, count() AS alerts FROM alerts FINAL WHERE {on_day} "
            f"GROUP BY rule, severity ORDER BY rule",
        ),
        _section(
            settings,
            "Alerts",
            f"SELECT created_at, rule, severity, message FROM alerts FINAL WHERE {on_day} "
            f"ORDER BY created_at LIMIT 1000",
        ),
    ]


def performance_sections(settings: Settings, day: str) -> list[Section]:
    return [
        _section(
            settings,
            "Latency per hour",
            f"SELECT toHour(decided_at) AS hour, count() AS decisions, "
            f"quantile(0.5)(latency_ms) AS p50_ms, quantile(0.99)(latency_ms) AS p99_ms, "
            f"max(latency_ms) AS max_ms FROM decisions FINAL "
            f"WHERE toDate(decided_at) = toDate('{day}') GROUP BY hour ORDER BY hour",
        ),
    ]


def coaf_rows(settings: Settings, start: str, end: str) -> Section:
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
    return _section(settings, "Suspicious activity (COAF)", sql)


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
    import matplotlib

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
    if kind == "coaf":
        section = coaf_rows(settings, day, end or day)
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
    sections = {
        "daily": daily_sections,
        "alerts": alerts_sections,
        "performance": performance_sections,
    }[kind](settings, day)
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
