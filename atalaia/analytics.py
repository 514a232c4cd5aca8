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
    from streams.app import new_app, run_until_stopped, serve_ops_of, utc_now
    from streams.ops import Check, Readiness
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
    readiness = Readiness("sink")
    kind = "ClickHouse server" if "://" in settings.analytics else "chDB directory"
    readiness.check("store", lambda: Check(True, f"{kind}, schema in place"))
    serve_ops_of(app, settings, readiness)

    async def serve_queries() -> None:
        runner = web.AppRunner(_query_app(store, lock, readiness))
        await runner.setup()
        await web.TCPSite(runner, settings.sink_host, settings.sink_port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    app.task(serve_queries)
    run_until_stopped(app, settings, "sink")


def _query_app(store: Any, lock: asyncio.Lock, readiness: Any) -> Any:
    """The sink's read-only query endpoint with its metrics and health checks (aiohttp,
    bound by the caller to ``sink_host``, 127.0.0.1 by default)."""
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

    from streams.ops import aiohttp_routes

    app = web.Application()
    app.router.add_post("/sql", sql)
    app.add_routes(aiohttp_routes(readiness))
    return app


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def run_query(
    settings: Settings, query: str, open_store: bool = True
) -> tuple[list[str], list[list[Any]]]:
    """Ask the running sink; without one, open the store directly (not an embedded one
    unless ``open_store``: a long-running process holding it would lock the sink out)."""
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
        if not open_store and "://" not in settings.analytics:
            raise AnalyticsError(
                f"no analytics sink answers on 127.0.0.1:{settings.sink_port} (atalaia sink)"
            ) from None
        # no sink running: the store is free to open
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
