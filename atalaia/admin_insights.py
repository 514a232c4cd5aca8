"""Admin API endpoints that explain and measure decisions and act on accounts:

- ``GET /api/admin/decisions/{event_id}``: why an event was decided so (``engine.explain``),
  read back from the analysts' store, with the list entries behind its hits as they are now
  and its user's account state;
- ``GET /api/admin/fraud-metrics?from=&to=``: precision, recall, F1, false-positive rate and
  AUC per flow and day, closed cases, latency percentiles, throughput, list hits;
- ``GET /api/admin/reports/{daily|alerts|performance}?date=``: the seed's reports;
- ``GET /api/admin/accounts[?status=frozen|all]``, ``GET /api/admin/accounts/{user_id}``,
  ``POST /api/admin/accounts/{user_id}/freeze|unfreeze`` (admin; audited with the previous
  and new state): frozen accounts, whose every event the workers block.

The store is asked through the running sink (or a ClickHouse server directly): 503 when it
cannot answer, 404 when the event is not (yet) stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import Field, ValidationError

from atalaia.admin_api import AdminApi, _Body, _body, _error, _shown, _Unprocessable
from atalaia.analytics import AnalyticsError
from atalaia.reports import DAY_REPORTS, Query, Section, metrics_sections
from config.auth import bearer_token
from engine.accounts import manual_change
from engine.explain import explain_decision
from schemas.models import AuditActor, ListEntry

T = TypeVar("T")
MAX_METRICS_DAYS = 366
_USER_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class AccountChangeIn(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=512)]


async def _ask(api: AdminApi, request: web.Request, asking: Callable[[Query], T]) -> T:
    """Ask the analysts' store in a thread (the queries block), with the caller's own API
    key: the sink answers analysts only, as this API does."""
    if api.query is None:
        raise AnalyticsError("no analytics store is configured for this API")
    query = api.query
    key = bearer_token(request.headers.get("Authorization"))

    def as_caller(sql: str) -> tuple[list[str], list[list[Any]]]:
        return query(sql, key)

    return await asyncio.to_thread(asking, as_caller)


def _day(request: web.Request, name: str, default: str | None = None) -> str:
    raw = request.query.get(name, default)
    if raw is None:
        raise _Unprocessable(name, f"{name}: required, a UTC day YYYY-MM-DD")
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise _Unprocessable(name, f"{name}: expected a UTC day YYYY-MM-DD") from None


def _as_json(sections: list[Section]) -> dict[str, list[dict[str, Any]]]:
    """Sections as ``{"detection_quality": [row, ...], ...}``, each row by column name."""
    return {
        section.title.lower().replace(" ", "_"): [
            dict(zip(section.columns, (_plain(v) for v in row), strict=True))
            for row in section.rows
        ]
        for section in sections
    }


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def _unavailable(exc: AnalyticsError) -> web.Response:
    return _error(503, "AnalyticsUnavailable", str(exc))


async def explain(api: AdminApi, request: web.Request, _actor: AuditActor) -> web.Response:
    from sinks.clickhouse import decision_of_row, stored_decision_sql  # the client, when asked

    event_id = request.match_info["event_id"]
    try:
        sql = stored_decision_sql(event_id)
    except ValidationError:
        raise _Unprocessable("event_id", "event_id: not a valid event id") from None
    try:
        _, rows = await _ask(api, request, lambda query: query(sql))
    except AnalyticsError as exc:
        return _unavailable(exc)
    if not rows:
        return _error(404, "NoSuchDecision", "no stored decision for that event id (yet)")
    decision = decision_of_row(rows[0])
    explained = explain_decision(decision)
    at = api.clock()
    entries = api.store.view.entries()
    for hit in explained["list_hits"]:
        entry = _entry_behind(hit, entries)
        if entry is not None:
            hit["entry"] = _shown(entry, at)
    state = api.store.accounts.states.get(decision.user_id) if decision.user_id else None
    explained["account"] = state.model_dump(mode="json") if state is not None else None
    return web.json_response(explained)


def _entry_behind(hit: dict[str, Any], entries: list[ListEntry]) -> ListEntry | None:
    """The list entry a hit names (type, mask, severity, source), if it is still known."""
    for entry in entries:
        if (
            entry.list_kind.value.lower() == hit["list"]
            and entry.entity_type.value == hit["entity_type"]
            and entry.masked_value == hit["masked_value"]
            and entry.severity.value == hit["severity"]
            and entry.source.value == hit["source"]
        ):
            return entry
    return None


async def fraud_metrics(api: AdminApi, request: web.Request, _actor: AuditActor) -> web.Response:
    today = api.clock().date().isoformat()
    start = _day(request, "from", today)
    end = _day(request, "to", start)
    span = (date.fromisoformat(end) - date.fromisoformat(start)).days
    if not 0 <= span < MAX_METRICS_DAYS:
        raise _Unprocessable("to", f"to: from 0 to {MAX_METRICS_DAYS - 1} days after from")
    try:
        sections = await _ask(api, request, lambda query: metrics_sections(query, start, end))
    except AnalyticsError as exc:
        return _unavailable(exc)
    return web.json_response({"from": start, "to": end, **_as_json(sections)})


async def report(api: AdminApi, request: web.Request, _actor: AuditActor) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in DAY_REPORTS:
        return _error(404, "NoSuchReport", f"reports: {', '.join(DAY_REPORTS)}")
    day = _day(request, "date", api.clock().date().isoformat())
    try:
        sections = await _ask(api, request, lambda query: DAY_REPORTS[kind](query, day))
    except AnalyticsError as exc:
        return _unavailable(exc)
    return web.json_response({"report": kind, "date": day, **_as_json(sections)})


async def list_accounts(api: AdminApi, request: web.Request, _actor: AuditActor) -> web.Response:
    status = request.query.get("status", "frozen")
    if status not in ("frozen", "all"):
        raise _Unprocessable("status", "status: one of frozen, all")
    accounts = api.store.accounts
    chosen = accounts.frozen if status == "frozen" else accounts.states
    shown = sorted((s.model_dump(mode="json") for s in chosen.values()), key=lambda s: s["user_id"])
    return web.json_response({"total": len(shown), "accounts": shown})


def _user(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not _USER_ID.match(user_id):
        raise _Unprocessable("user_id", "user_id: not a valid user id")
    return user_id


async def show_account(api: AdminApi, request: web.Request, _actor: AuditActor) -> web.Response:
    user_id = _user(request)
    state = api.store.accounts.states.get(user_id)
    if state is None:
        return web.json_response({"user_id": user_id, "frozen": False, "history": "never frozen"})
    return web.json_response(state.model_dump(mode="json"))


async def _change(
    api: AdminApi, request: web.Request, actor: AuditActor, frozen: bool
) -> web.Response:
    user_id = _user(request)
    body: AccountChangeIn = await _body(request, AccountChangeIn)
    known = api.store.accounts.states.get(user_id)
    if (known is not None and known.frozen) == frozen:
        state = "frozen" if frozen else "not frozen"
        return _error(409, "NoChange", f"the account is already {state}")
    change = manual_change(user_id, frozen, body.reason, actor.id, api.clock())
    await api.store.change_account(change, actor)
    return web.json_response(change.model_dump(mode="json"))


async def freeze(api: AdminApi, request: web.Request, actor: AuditActor) -> web.Response:
    return await _change(api, request, actor, frozen=True)


async def unfreeze(api: AdminApi, request: web.Request, actor: AuditActor) -> web.Response:
    return await _change(api, request, actor, frozen=False)


def openapi_paths(operation: Callable[..., dict[str, Any]], analyst: Any, admin: Any) -> Any:
    """These endpoints in the OpenAPI document (``operation`` as the admin API builds one)."""
    accounts = "/api/admin/accounts"
    return {
        "/api/admin/decisions/{event_id}": {
            "get": operation("Explain a decision", analyst, None, ("event_id",))
        },
        "/api/admin/fraud-metrics": {
            "get": operation("Detection quality and operations", analyst, None, ("from", "to"))
        },
        "/api/admin/reports/{kind}": {
            "get": operation("Daily, alerts or performance report", analyst, None, ("date",))
        },
        accounts: {"get": operation("Frozen (or all known) accounts", analyst, None, ("status",))},
        accounts + "/{user_id}": {
            "get": operation("An account's state", analyst, None, ("user_id",))
        },
        accounts + "/{user_id}/freeze": {
            "post": operation("Freeze an account", admin, AccountChangeIn, ("user_id",))
        },
        accounts + "/{user_id}/unfreeze": {
            "post": operation("Unfreeze an account", admin, AccountChangeIn, ("user_id",))
        },
    }
