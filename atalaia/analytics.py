"""``atalaia sink`` (ClickHouse writer and alerter) and ``atalaia sql`` (analysts' queries).

chDB lets one process open a data directory. So the sink serves read-only queries on
127.0.0.1 (``POST /sql``; its Prometheus metrics on ``GET /metrics``) while it runs, and
``atalaia sql`` asks it; when no sink runs, ``atalaia sql`` opens the store itself. A
ClickHouse server URL works the same way.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from config.settings import Settings

QUERY_TIMEOUT_S = 60


class AnalyticsError(Exception):
    """A query failed or the store cannot be reached; one line for the operator."""


def run_sink(settings: Settings) -> None:
    from aiohttp import web

    from agents.alerter import register_alerter
    from agents.analytics_sink import register_analytics_sink
    from config.rules import load_rules
    from sinks.clickhouse import AnalyticsStore, connect
    from streams.admin import ensure_topics
    from streams.app import new_app, run_until_stopped, utc_now
    from streams.topics import Topics

    asyncio.run(ensure_topics(settings))
    store = AnalyticsStore(connect(settings.analytics))
    store.ensure_schema()
    app = new_app(settings, f"{settings.app_id}-sink")
    lock = asyncio.Lock()
    topics = Topics(settings.topic_prefix)
    register_analytics_sink(
        app, topics, store, lock, settings.sink_batch_rows, settings.sink_batch_ms / 1000
    )
    alert_rules = load_rules(settings.rules_path).alerts
    register_alerter(app, topics, alert_rules, settings.alert_webhook_urls, utc_now)

    async def serve_queries() -> None:
        runner = web.AppRunner(_query_app(store, lock))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.sink_port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    app.task(serve_queries)
    run_until_stopped(app, settings)


def _query_app(store: Any, lock: asyncio.Lock) -> Any:
    """The sink's read-only query endpoint (aiohttp, bound by the caller to 127.0.0.1)."""
    from aiohttp import web

    async def sql(request: web.Request) -> web.Response:
        query = (await request.json()).get("sql", "")
        try:
            async with lock:
                columns, rows = await asyncio.to_thread(store.query_read_only, query)
        except Exception as exc:  # ClickHouse errors: the message is the answer
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return web.json_response({"error": first[:500]}, status=400)
        return web.json_response({"columns": columns, "rows": rows}, dumps=_dumps)

    from streams.metrics import metrics_page

    app = web.Application()
    app.router.add_post("/sql", sql)
    app.router.add_get("/metrics", metrics_page)
    return app


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def run_query(settings: Settings, query: str) -> tuple[list[str], list[list[Any]]]:
    """Ask the running sink; without one, open the store directly."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.sink_port}/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_S) as response:
            body = json.loads(response.read())
            return body["columns"], body["rows"]
    except urllib.error.HTTPError as error:
        raise AnalyticsError(json.loads(error.read()).get("error", str(error))) from None
    except (urllib.error.URLError, ConnectionError):
        pass  # no sink running: the store is free to open
    from sinks.clickhouse import AnalyticsStore, connect, held_elsewhere

    try:
        columns, rows = AnalyticsStore(connect(settings.analytics)).query_read_only(query)
    except Exception as exc:  # ClickHouse and chDB raise many types
        if held_elsewhere(settings.analytics):
            raise AnalyticsError(
                f"the analytics store {settings.analytics} is open in another process (a sink "
                f"answers queries on 127.0.0.1:{settings.sink_port} once it has started)"
            ) from None
        raise AnalyticsError(str(exc).strip().splitlines()[0][:500]) from None
    return columns, [list(map(_plain, row)) for row in rows]


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | type(None)) else str(value)


def render(columns: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned table."""
    cells = [columns, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} rows)"


def sql_main(settings: Settings, query: str) -> int:
    columns, rows = run_query(settings, query)
    print(render(columns, rows))
    return 0
