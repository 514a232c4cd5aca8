"""``atalaia sink`` (ClickHouse writer and alerter) and ``atalaia sql`` (analysts' queries).

chDB lets one process open a data directory. So the sink serves read-only queries on
127.0.0.1 (``POST /sql`` with an analyst or admin API key, as the admin API takes them; its
Prometheus metrics on ``GET /metrics``) while it runs, and ``atalaia sql`` asks it with the
key in ``$ATALAIA_API_KEY``; when no sink runs, ``atalaia sql`` opens the store itself. A
ClickHouse server URL works the same way.

Analysts' queries run on a client (a session) of their own, read-only and bounded in time,
never on the writer's: whatever an analyst types, the sink goes on inserting. Inserts and
queries run in threads that do not hold up the process's exit, so SIGTERM stops the sink
within a second, even in the middle of a long query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from atalaia.admin_cli import API_KEY_ENV
from config.auth import ApiKey, authenticate, parse_api_keys
from config.settings import Settings
from streams.stopping import in_daemon_thread

QUERY_TIMEOUT_S = 60
STOP_WAIT_S = 0.2
"""How long a stopping sink waits for a query still being answered."""


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
    queries = AnalyticsStore(connect(settings.analytics))  # the analysts' own session
    keys = parse_api_keys(settings.api_keys.get_secret_value())
    app = new_app(settings, f"{settings.app_id}-sink")
    topics = Topics(settings.topic_prefix)
    register_analytics_sink(
        app, topics, store, settings.sink_batch_rows, settings.sink_batch_ms / 1000
    )
    alert_rules = load_rules(settings.rules_path).alerts
    register_alerter(app, topics, alert_rules, settings.alert_webhook_urls, utc_now)
    readiness = Readiness("sink")
    kind = "ClickHouse server" if "://" in settings.analytics else "chDB directory"
    readiness.check("store", lambda: Check(True, f"{kind}, schema in place"))
    serve_ops_of(app, settings, readiness)

    async def serve_queries() -> None:
        runner = web.AppRunner(_query_app(queries, keys, readiness), shutdown_timeout=STOP_WAIT_S)
        await runner.setup()
        await web.TCPSite(runner, settings.sink_host, settings.sink_port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    app.task(serve_queries)
    try:
        run_until_stopped(app, settings, "sink")
    except SystemExit as stopped:
        code = stopped.code if isinstance(stopped.code, int) else 1
    else:
        code = 0
    # The worker has stopped (offsets committed for what was inserted, which is stored):
    # what remains is the embedded engine's teardown and threads still in it (an
    # abandoned query), seconds at times. A stop must not wait for them.
    logging.shutdown()
    os._exit(code)


def _query_app(store: Any, keys: dict[str, ApiKey], readiness: Any) -> Any:
    """The sink's read-only query endpoint with its metrics and health checks (aiohttp,
    bound by the caller to ``sink_host``, 127.0.0.1 by default): ``{"sql": "..."}`` with an
    analyst's (or admin's) key; one query at a time."""
    from aiohttp import web

    one_at_a_time = asyncio.Lock()  # the client serves one call at a time

    async def sql(request: web.Request) -> web.Response:
        if authenticate(request.headers.get("Authorization"), keys) is None:
            return web.json_response(
                {"error": "an analyst API key is needed (Bearer)"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            body = None
        query = body.get("sql") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return web.json_response(
                {"error": 'the body must be {"sql": "SELECT ..."}'}, status=400
            )
        try:
            async with one_at_a_time:
                columns, rows = await in_daemon_thread(store.query_read_only, query)
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
    settings: Settings, query: str, open_store: bool = True, api_key: str | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Ask the running sink, with ``api_key`` (by default the key in ``$ATALAIA_API_KEY``);
    without one, open the store directly (not an embedded one unless ``open_store``: a
    long-running process holding it would lock the sink out)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.sink_port}/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_S) as response:
            body = json.loads(response.read())
            return body["columns"], body["rows"]
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise AnalyticsError(
                f"the running sink needs an analyst API key in ${API_KEY_ENV}"
            ) from None
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
