"""The admin API (seed "Interface de Administração"): block/allow lists, list checks, imports,
exports, statistics, the lists' change log, sanctions/PEP name screening, investigation
cases (changes go to the case agent, the cases' only writer), and (``atalaia.admin_insights``)
decisions explained, fraud metrics, reports and frozen accounts.

Served by ``atalaia api`` beside the decision endpoint (127.0.0.1 by default). Every endpoint
needs ``Authorization: Bearer <key>`` with a key from ``ATALAIA_API_KEYS``: analysts read,
check, screen and add case notes; admins also change the lists and update and close cases.
Unauthenticated calls get 401, wrong-role calls 403, and change nothing; invalid input gets
422 naming the field. Every call, refused or not, is written to the audit topic with its
actor; list and case changes also with their previous and new state. Values go in (to be
hashed) but never come out: responses show masks and keyed hashes only.
``GET /api/openapi.json`` describes it all.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from atalaia.audit import read_log
from config.auth import Role, authenticate, parse_api_keys
from config.rules import RuleSet
from config.settings import Settings
from engine.audit import actor_of, call_record, erasure_record, evidence_record
from engine.identities import InvalidListValue, lookup_hashes
from engine.list_import import (
    LineError,
    ListRow,
    SanctionedParty,
    parse_list_csv,
    parse_list_jsonl,
    parse_ofac_csv,
    parse_ofac_xml,
    read_row,
)
from engine.lists import judge_hits, list_features, value_key_of
from engine.masking import mask_field, mask_text, mask_value
from engine.sealing import open_note, open_sealed, seal, seal_note
from schemas.errors import describe_validation_error, failure_without_values
from schemas.models import (
    AuditActor,
    Case,
    CaseAction,
    CaseCommand,
    CaseOutcome,
    CasePriority,
    CaseStatus,
    ListEntityType,
    ListEntry,
    ListKind,
    ListSeverity,
    ListSource,
    WatchlistName,
)
from sinks.key_store import SubjectKeyStore
from streams.admin_state import AdminState

log = logging.getLogger(__name__)
Handler = Callable[[web.Request, AuditActor], Awaitable[web.Response]]
MAX_PAGE = 1000
CASE_WAIT_S = 5.0
"""How long a case change waits for the case agent before answering 202."""
_PRIORITY_ORDER = list(CasePriority)


def _now() -> datetime:
    return datetime.now(UTC)


KeyedQuery = Callable[[str, str | None], tuple[list[str], list[list[Any]]]]
"""Runs SQL on the analysts' store with the caller's API key (the sink answers analysts)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntryIn(_Body):
    """A value to list. ``value`` is hashed on arrival and kept nowhere."""

    kind: ListKind = ListKind.BLOCK
    entity_type: ListEntityType
    value: Annotated[str, Field(min_length=1, max_length=256)]
    severity: ListSeverity
    source: ListSource = ListSource.MANUAL
    reason: Annotated[str, Field(min_length=1, max_length=512)]
    expires_at: AwareDatetime | None = None


class Entity(_Body):
    entity_type: ListEntityType
    value: Annotated[str, Field(min_length=1, max_length=256)]


class CheckIn(_Body):
    entities: Annotated[list[Entity], Field(min_length=1, max_length=MAX_PAGE)]


class ScreeningIn(_Body):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    limit: Annotated[int, Field(ge=1, le=50)] = 5


class CaseUpdateIn(_Body):
    status: Literal[CaseStatus.OPEN, CaseStatus.INVESTIGATING] | None = None
    priority: CasePriority | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class NoteIn(_Body):
    text: Annotated[str, Field(min_length=1, max_length=4000)]


class CloseIn(_Body):
    outcome: CaseOutcome
    note: Annotated[str, Field(min_length=1, max_length=4000)] | None = None


PiiValue = Annotated[str, Field(min_length=1, max_length=512)]
PiiName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


class EvidenceIn(_Body):
    """Personal data to keep for an investigation: sealed, never stored in clear."""

    pii: Annotated[dict[PiiName, PiiValue], Field(min_length=1, max_length=20)]
    reason: Annotated[str, Field(min_length=1, max_length=512)]
    case_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class _Unprocessable(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


def _error(status: int, error: str, detail: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": error, "detail": detail}
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


async def _body(request: web.Request, model: type[_Body]) -> Any:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise _Unprocessable(field, describe_validation_error(exc)) from None


def _query_choice(request: web.Request, name: str, kind: type[StrEnum]) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise _Unprocessable(name, f"{name}: not one of {choices}") from None


def _query_int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    if not re.fullmatch(r"[0-9]{1,12}", raw) or not 0 <= int(raw) <= high:
        raise _Unprocessable(name, f"{name}: must be an integer from 0 to {high}")
    return int(raw)


def _template(request: web.Request) -> str:
    """The route's pattern (``/api/admin/cases/{case_id}``), never the path with its ids."""
    route = request.match_info.route.resource
    return route.canonical if route is not None else "unmatched"


def _subject_id(request: web.Request) -> str:
    """The ``subject_id`` path parameter, as the events name subjects (an Identifier)."""
    raw = request.match_info["subject_id"]
    if not _IDENTIFIER.fullmatch(raw):
        raise _Unprocessable(
            "subject_id", "subject_id: 1-128 letters, digits or ._:@/+=- (a user or gift id)"
        )
    return raw


_IDENTIFIER = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
"""Ids as the input events carry them (``schemas.models.Identifier``)."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading
    apostrophe (OWASP's neutralisation); other values stay as they are.

    >>> spreadsheet_safe("=1+1"), spreadsheet_safe("@SUM(A1)"), spreadsheet_safe("ring")
    ("'=1+1", "'@SUM(A1)", 'ring')
    """
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def _status(entry: ListEntry, at: datetime) -> str:
    if entry.removed_at is not None:
        return "removed"
    return "active" if entry.active_at(at) else "expired"


def _shown(entry: ListEntry, at: datetime) -> dict[str, Any]:
    return {**entry.model_dump(mode="json"), "status": _status(entry, at)}


class AdminApi:
    def __init__(
        self,
        settings: Settings,
        store: AdminState,
        rules: Callable[[], RuleSet],
        keys_store: SubjectKeyStore,
        clock: Callable[[], datetime] = _now,
        query: KeyedQuery | None = None,
    ) -> None:
        """``query``: the analysts' store, for the decisions, metrics and reports."""
        self.store, self.rules, self.clock = store, rules, clock
        self.query = query
        self.settings = settings
        self.keys = parse_api_keys(settings.api_keys.get_secret_value())
        self.keys_store = keys_store

    def routes(self) -> list[web.RouteDef]:
        from atalaia import admin_insights as insights

        analyst, admin = Role.ANALYST, Role.ADMIN
        base = "/api/admin/blacklist"
        subject = "/api/admin/subjects/{subject_id}"
        accounts = "/api/admin/accounts"
        return [
            web.get("/api/admin/decisions/{event_id}", self._with(analyst, insights.explain)),
            web.get("/api/admin/fraud-metrics", self._with(analyst, insights.fraud_metrics)),
            web.get("/api/admin/reports/{kind}", self._with(analyst, insights.report)),
            web.get(accounts, self._with(analyst, insights.list_accounts)),
            web.get(accounts + "/{user_id}", self._with(analyst, insights.show_account)),
            web.post(accounts + "/{user_id}/freeze", self._with(admin, insights.freeze)),
            web.post(accounts + "/{user_id}/unfreeze", self._with(admin, insights.unfreeze)),
            web.get("/api/openapi.json", self._guard(analyst, self.openapi)),
            web.get(base, self._guard(analyst, self.list_entries)),
            web.post(base, self._guard(admin, self.add_entry)),
            web.delete(base + "/{entity_type}/{value}", self._guard(admin, self.remove_entry)),
            web.post(base + "/check", self._guard(analyst, self.check)),
            web.post(base + "/import", self._guard(admin, self.import_entries)),
            web.get(base + "/export", self._guard(admin, self.export)),
            web.get(base + "/statistics", self._guard(analyst, self.statistics)),
            web.get(base + "/audit-logs", self._guard(analyst, self.audit_logs)),
            web.post("/api/admin/screening", self._guard(analyst, self.screen)),
            web.get("/api/admin/cases", self._guard(analyst, self.list_cases)),
            web.get("/api/admin/cases/{case_id}", self._guard(analyst, self.show_case)),
            web.put("/api/admin/cases/{case_id}", self._guard(admin, self.update_case)),
            web.post("/api/admin/cases/{case_id}/notes", self._guard(analyst, self.add_note)),
            web.post("/api/admin/cases/{case_id}/close", self._guard(admin, self.close_case)),
            web.post(subject + "/evidence", self._guard(analyst, self.add_evidence)),
            web.get(subject + "/export", self._guard(admin, self.export_subject)),
            web.post(subject + "/erase", self._guard(admin, self.erase_subject)),
        ]

    def _with(
        self, needed: Role, handler: Callable[[AdminApi, web.Request, AuditActor], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[Any]]:
        """A handler of another module (``admin_insights``), guarded like this class's own."""
        return self._guard(needed, partial(handler, self))

    def _guard(self, needed: Role, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            key = authenticate(request.headers.get("Authorization"), self.keys)
            actor = actor_of(
                key.name if key else None,
                key.role.value if key else None,
                request.remote,
                request.headers.get("User-Agent"),
            )
            response = _error(500, "InternalError", "the request failed; see the API's log")
            try:
                if key is None:
                    response = _error(401, "Unauthorized", "missing or unknown API key (Bearer)")
                elif not key.role.allows(needed):
                    response = _error(403, "Forbidden", f"needs the {needed.value} role")
                else:
                    response = await handler(request, actor)
            except _Unprocessable as exc:
                response = _error(422, "InvalidRequest", exc.detail, exc.field)
            except web.HTTPException as exc:  # aiohttp's own refusals: a body too large...
                response = _error(exc.status, exc.reason.replace(" ", ""), exc.reason)
            except Exception as exc:  # a bug: answered 500, logged, audited like any call
                failure = failure_without_values(exc)
                log.error(
                    "admin call %s %s failed: %s", request.method, _template(request), failure
                )
            finally:
                line = f"{request.method} {_template(request)} {response.status}"
                await self.store.audit([call_record(actor, line, self.clock())])
            return response

        return guarded

    async def openapi(self, _request: web.Request, _actor: AuditActor) -> web.Response:
        return web.json_response(openapi_document())

    async def list_entries(self, request: web.Request, _actor: AuditActor) -> web.Response:
        at = self.clock()
        kind = _query_choice(request, "kind", ListKind)
        entity_type = _query_choice(request, "entity_type", ListEntityType)
        severity = _query_choice(request, "severity", ListSeverity)
        source = _query_choice(request, "source", ListSource)
        status = request.query.get("status", "active")
        if status not in ("active", "removed", "expired", "all"):
            raise _Unprocessable("status", "status: one of active, removed, expired, all")
        limit = _query_int(request, "limit", 100, MAX_PAGE)
        offset = _query_int(request, "offset", 0, 10**9)
        chosen = [
            e
            for e in self.store.view.entries()
            if (kind is None or e.list_kind is kind)
            and (entity_type is None or e.entity_type is entity_type)
            and (severity is None or e.severity is severity)
            and (source is None or e.source is source)
            and (status == "all" or _status(e, at) == status)
        ]
        chosen.sort(key=lambda e: (e.created_at, e.entry_id))
        page = [_shown(e, at) for e in chosen[offset : offset + limit]]
        return web.json_response({"total": len(chosen), "entries": page})

    async def add_entry(self, request: web.Request, actor: AuditActor) -> web.Response:
        body: EntryIn = await _body(request, EntryIn)
        row = _row_of(body)
        previous = self.store.find(body.kind, row.entity_type, row.value)
        (entry,) = await self.store.add([row], body.kind, actor, self.clock())
        created = previous is None or previous.removed_at is not None
        return web.json_response(_shown(entry, self.clock()), status=201 if created else 200)

    async def remove_entry(self, request: web.Request, actor: AuditActor) -> web.Response:
        entity_type = _path_choice(request.match_info["entity_type"])
        kind = _query_choice(request, "kind", ListKind) or ListKind.BLOCK
        try:
            entries = self.store.listing(kind, entity_type, request.match_info["value"])
        except InvalidListValue as exc:
            raise _Unprocessable("value", str(exc)) from None
        if not entries:
            return _error(404, "NotListed", f"no {kind.value} entry for that {entity_type.value}")
        # A value the engine listed (a user carrying a listed e-mail) is freed with its own.
        removed = await self.store.remove_all(entries, actor, self.clock())
        return web.json_response(_shown(removed[0], self.clock()))

    async def check(self, request: web.Request, _actor: AuditActor) -> web.Response:
        body: CheckIn = await _body(request, CheckIn)
        at, rules = self.clock(), self.rules()
        results = []
        for number, item in enumerate(body.entities):
            try:
                identities = lookup_hashes(item.entity_type, item.value, self.store.hash_key)
            except InvalidListValue as exc:
                raise _Unprocessable(f"entities.{number}.value", str(exc)) from None
            ip = item.value if item.entity_type is ListEntityType.IP else None
            hits = self.store.view.matching(identities, ip, at)
            judged = judge_hits(list_features(hits), rules.lists)
            results.append(
                {
                    "entity_type": item.entity_type.value,
                    "masked_value": mask_value(item.entity_type.value, item.value),
                    "listed": any(h.list_kind is ListKind.BLOCK for h in hits),
                    "allowed": any(h.list_kind is ListKind.ALLOW for h in hits),
                    "score": sum(r.points for r in judged.reasons),
                    "severity": judged.severity.value if judged.severity else None,
                    "reasons": [r.model_dump() for r in judged.reasons],
                    "hits": [_shown(h, at) for h in hits],
                }
            )
        return web.json_response({"results": results})

    async def import_entries(self, request: web.Request, actor: AuditActor) -> web.Response:
        source_format = request.query.get("format", "csv")
        kind = _query_choice(request, "kind", ListKind) or ListKind.BLOCK
        text = (await request.read()).decode("utf-8", errors="replace")
        lines = io.StringIO(text)
        parties: list[SanctionedParty] = []
        parsed: Iterator[ListRow | LineError | SanctionedParty]
        if source_format == "csv":
            parsed = parse_list_csv(lines)
        elif source_format == "jsonl":
            parsed = parse_list_jsonl(lines)
        elif source_format == "ofac-xml":
            parsed = parse_ofac_xml(line.encode() for line in lines)
        elif source_format == "ofac-csv":
            parsed = parse_ofac_csv(lines)
        else:
            raise _Unprocessable("format", "format: one of csv, jsonl, ofac-xml, ofac-csv")
        rows: list[ListRow] = []
        errors: list[dict[str, Any]] = []
        for item in parsed:
            if isinstance(item, LineError):
                errors.append({"line": item.line, "reason": item.reason})
            elif isinstance(item, SanctionedParty):
                parties.append(item)
                rows.extend(item.wallets)
            else:
                rows.append(item)
        at, correlation = self.clock(), f"import-{uuid.uuid4().hex[:12]}"
        await self.store.add(rows, kind, actor, at, correlation)
        names = [_watchlist_name(party, at) for party in parties]
        await self.store.add_names(names)
        body = {
            "correlation_id": correlation,
            "imported": len(rows),
            "names": len(names),
            "errors": errors,
        }
        return web.json_response(body)

    async def export(self, request: web.Request, _actor: AuditActor) -> web.Response:
        at = self.clock()
        entries = sorted(self.store.view.entries(), key=lambda e: (e.created_at, e.entry_id))
        shown = [_shown(e, at) for e in entries if _status(e, at) == "active"]
        if request.query.get("format", "jsonl") == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(_shown_fields()))
            writer.writeheader()
            writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in shown)
            return web.Response(text=out.getvalue(), content_type="text/csv")
        lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in shown)
        return web.Response(text=lines, content_type="application/x-ndjson")

    async def statistics(self, _request: web.Request, _actor: AuditActor) -> web.Response:
        at = self.clock()
        entries = self.store.view.entries()
        active = [e for e in entries if _status(e, at) == "active"]
        return web.json_response(
            {
                "total": len(entries),
                "by_status": dict(Counter(_status(e, at) for e in entries)),
                "active_by_kind": dict(Counter(e.list_kind.value for e in active)),
                "active_by_entity_type": dict(Counter(e.entity_type.value for e in active)),
                "active_by_severity": dict(Counter(e.severity.value for e in active)),
                "active_by_source": dict(Counter(e.source.value for e in active)),
                "watchlist_names": len(self.store.watchlist),
            }
        )

    async def audit_logs(self, request: web.Request, _actor: AuditActor) -> web.Response:
        limit = _query_int(request, "limit", 100, MAX_PAGE)
        changes = [
            {
                "entry_id": e.entry_id,
                "change": "remove" if e.removed_at is not None else "add",
                "actor": e.removed_by if e.removed_at is not None else e.created_by,
                "at": (e.removed_at or e.created_at).isoformat(),
                "entity_type": e.entity_type.value,
                "masked_value": e.masked_value,
                "severity": e.severity.value,
                "source": e.source.value,
                "reason": e.reason,
            }
            for e in self.store.history
        ]
        return web.json_response({"total": len(changes), "changes": changes[-limit:]})

    async def screen(self, request: web.Request, _actor: AuditActor) -> web.Response:
        body: ScreeningIn = await _body(request, ScreeningIn)
        screener = self.store.screener(self.rules().screening.min_score)
        matches = screener.screen(body.name, limit=body.limit)
        return web.json_response(
            {
                "min_score": screener.min_score,
                "matches": [
                    {
                        "entry_id": m.entry_id,
                        "list_name": m.list_name,
                        "matched_name": m.matched_name,
                        "score": round(m.score, 4),
                        "method": m.method,
                        "breakdown": _breakdown(m.breakdown),
                    }
                    for m in matches
                ],
            }
        )

    async def list_cases(self, request: web.Request, _actor: AuditActor) -> web.Response:
        status = _query_choice(request, "status", CaseStatus)
        priority = _query_choice(request, "priority", CasePriority)
        assignee = request.query.get("assignee")
        limit = _query_int(request, "limit", 100, MAX_PAGE)
        chosen = [
            c
            for c in self.store.cases.values()
            if (status is None or c.status is status)
            and (priority is None or c.priority is priority)
            and (assignee is None or c.assignee == assignee)
        ]
        chosen.sort(key=lambda c: (_PRIORITY_ORDER.index(c.priority), c.updated_at), reverse=True)
        page = [self._shown_case(c) for c in chosen[:limit]]
        return web.json_response({"total": len(chosen), "cases": page})

    async def show_case(self, request: web.Request, _actor: AuditActor) -> web.Response:
        case = self.store.cases.get(request.match_info["case_id"])
        if case is None:
            return _error(404, "NoSuchCase", "no case with that id")
        return web.json_response(self._shown_case(case))

    async def update_case(self, request: web.Request, actor: AuditActor) -> web.Response:
        body: CaseUpdateIn = await _body(request, CaseUpdateIn)
        changes = body.model_dump(exclude_none=True)
        if not changes:
            raise _Unprocessable("body", "body: give status, priority or assignee")
        if body.assignee is not None:
            changes["assignee"] = mask_text(body.assignee)
        return await self._command(request, actor, CaseAction.UPDATE, **changes)

    async def add_note(self, request: web.Request, actor: AuditActor) -> web.Response:
        body: NoteIn = await _body(request, NoteIn)
        return await self._command(request, actor, CaseAction.NOTE, note=body.text)

    async def close_case(self, request: web.Request, actor: AuditActor) -> web.Response:
        body: CloseIn = await _body(request, CloseIn)
        if body.note is not None:
            noted = await self._command(request, actor, CaseAction.NOTE, note=body.note)
            if noted.status != 200:
                return noted
        return await self._command(request, actor, CaseAction.CLOSE, outcome=body.outcome)

    async def _command(
        self,
        request: web.Request,
        actor: AuditActor,
        action: CaseAction,
        note: str | None = None,
        **fields: Any,
    ) -> web.Response:
        """Send the change to the case agent (the case's only writer) and answer with the
        case as it applied it: 200, or 202 with the command id when that takes too long.
        A note leaves this process sealed under the subject's key, never in clear."""
        case = self.store.cases.get(request.match_info["case_id"])
        if case is None:
            return _error(404, "NoSuchCase", "no case with that id")
        if case.status is CaseStatus.CLOSED:
            return _error(409, "CaseClosed", "the case is closed")
        if note is not None:
            sealed = seal_note(self.keys_store.key_for(case.subject_id), note, case.subject_id)
            fields |= {"note_sealed": sealed.sealed, "note_digest": sealed.digest}
        command = CaseCommand(
            command_id=f"api-{uuid.uuid4().hex}",
            subject_type=case.subject_type,
            subject_id=case.subject_id,
            action=action,
            actor=actor.id,
            actor_type=actor.type,
            at=self.clock(),
            case_id=case.case_id,
            **fields,
        )
        await self.store.send_case_command(command)
        applied = await self.store.case_after(case.case_id, case.version, CASE_WAIT_S)
        if applied is None:
            return web.json_response({"command_id": command.command_id}, status=202)
        return web.json_response(self._shown_case(applied))

    def _shown_case(self, case: Case) -> dict[str, Any]:
        """A case as analysts see it: its notes opened with the subject's key while it
        exists (``ERASED`` after), their sealed form left out."""
        shown = case.model_dump(mode="json")
        key = self.keys_store.existing(case.subject_id) if case.notes else None
        shown["notes"] = [
            {
                "at": note["at"],
                "author": note["author"],
                "text": _opened(key, raw.sealed, case.subject_id) if raw.sealed else raw.text,
                "digest": note["digest"],
            }
            for raw, note in zip(case.notes, shown["notes"], strict=True)
        ]
        return shown

    async def add_evidence(self, request: web.Request, actor: AuditActor) -> web.Response:
        body: EvidenceIn = await _body(request, EvidenceIn)
        subject_id = _subject_id(request)
        audit_id = f"evidence-{uuid.uuid4().hex}"
        plaintext = json.dumps(body.pii, sort_keys=True, ensure_ascii=False).encode()
        sealed = seal(self.keys_store.key_for(subject_id), plaintext, audit_id)
        masked = {name: mask_field(name, value) for name, value in body.pii.items()}
        record = evidence_record(
            audit_id, actor, subject_id, body.case_id, body.reason, masked, sealed, self.clock()
        )
        await self.store.audit([record])
        return web.json_response({"audit_id": audit_id, "masked": masked}, status=201)

    async def export_subject(self, request: web.Request, _actor: AuditActor) -> web.Response:
        """Everything held about a subject (LGPD access): its audit records with their sealed
        data opened while its key exists, its cases, and list entries naming it."""
        subject_id = _subject_id(request)
        log = await read_log(self.settings)
        key = self.keys_store.existing(subject_id)
        records = []
        for _, chain in sorted(log.chains.items()):
            for _, record in chain:
                if record.compliance.data_subject != subject_id:
                    continue
                shown = record.model_dump(mode="json", exclude={"sealed_pii"})
                if record.sealed_pii is not None:
                    opened = open_sealed(key, record.sealed_pii, record.audit_id) if key else None
                    shown["pii"] = json.loads(opened) if opened else ERASED
                records.append(shown)
        user_key = value_key_of(ListEntityType.USER, subject_id, self.store.hash_key)
        entries = [
            _shown(e, self.clock())
            for e in self.store.view.entries()
            if e.entity_type is ListEntityType.USER and e.value_key == user_key
        ]
        cases = [
            self._shown_case(c) for c in self.store.cases.values() if c.subject_id == subject_id
        ]
        body = {
            "subject_id": subject_id,
            "generated_at": self.clock().isoformat(),
            "key_held": key is not None,
            "audit_records": records,
            "cases": cases,
            "list_entries": entries,
        }
        return web.json_response(body)

    async def erase_subject(self, request: web.Request, actor: AuditActor) -> web.Response:
        subject_id = _subject_id(request)
        destroyed = self.keys_store.destroy(subject_id)
        await self.store.audit([erasure_record(actor, subject_id, destroyed, self.clock())])
        return web.json_response({"subject_id": subject_id, "key_destroyed": destroyed})


ERASED = "erased (key destroyed)"


def _opened(key: bytes | None, sealed: str, subject_id: str) -> str:
    opened = open_note(key, sealed, subject_id) if key is not None else None
    return opened if opened is not None else ERASED


def _breakdown(breakdown: Any) -> dict[str, Any]:
    return {
        "normalised_query": breakdown.normalised_query,
        "normalised_candidate": breakdown.normalised_candidate,
        "method": breakdown.method,
        "pairs": [
            {
                "query_token": p.query_token,
                "candidate_token": p.candidate_token,
                "similarity": round(p.similarity, 4),
                "how": p.how,
            }
            for p in breakdown.pairs
        ],
        "unmatched_query": list(breakdown.unmatched_query),
        "unmatched_candidate": list(breakdown.unmatched_candidate),
    }


def _row_of(body: EntryIn) -> ListRow:
    fields = body.model_dump(mode="json", exclude={"kind"}, exclude_none=True)
    row = read_row(1, fields)
    if isinstance(row, LineError):  # the body's types are checked: only the value can fail
        raise _Unprocessable("value", row.reason)
    return row


def _path_choice(raw: str) -> ListEntityType:
    try:
        return ListEntityType(raw)
    except ValueError:
        choices = ", ".join(ListEntityType)
        raise _Unprocessable("entity_type", f"entity_type: one of {choices}") from None


def _watchlist_name(party: SanctionedParty, at: datetime) -> WatchlistName:
    return WatchlistName(
        entry_id=f"OFAC:{party.entry_id}",
        list_name="OFAC",
        name=party.name,
        aliases=list(party.aliases),
        kind=party.party_type,
        programs=list(party.programs),
        listed_at=at,
    )


def _shown_fields() -> list[str]:
    return [*ListEntry.model_fields, "status"]


_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_PATH_PARAMS = ("entity_type", "value", "case_id", "subject_id", "event_id", "user_id")


def _operation(
    summary: str, role: Role, body: type[_Body] | None = None, params: tuple[str, ...] = ()
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": f"Role: {role.value} or above.",
        "security": _SECURITY,
        "parameters": [
            {
                "name": p,
                "in": "path" if p in _PATH_PARAMS else "query",
                "required": p in _PATH_PARAMS,
                "schema": {"type": "string"},
            }
            for p in params
        ],
        "responses": {
            "200": {"description": "OK"},
            "401": {"description": "missing or unknown API key"},
            "403": {"description": "role not allowed"},
            "422": {"description": "invalid input; `field` names the one at fault"},
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body.model_json_schema()}},
        }
    return operation


def openapi_document() -> dict[str, Any]:
    analyst, admin = Role.ANALYST, Role.ADMIN
    base = "/api/admin/blacklist"
    filters = ("kind", "entity_type", "severity", "source", "status", "limit", "offset")
    paths: dict[str, Any] = {
        base: {
            "get": _operation("List entries with filters", analyst, params=filters),
            "post": _operation("Add (or update) an entry", admin, EntryIn),
        },
        base + "/{entity_type}/{value}": {
            "delete": _operation("Remove an entry", admin, params=("entity_type", "value", "kind"))
        },
        base + "/check": {"post": _operation("Check entities (batch)", analyst, CheckIn)},
        base + "/import": {
            "post": {
                **_operation("Bulk import", admin, params=("format", "kind")),
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "application/xml": {"schema": {"type": "string"}},
                    },
                },
            }
        },
        base + "/export": {"get": _operation("Export active entries", admin, params=("format",))},
        base + "/statistics": {"get": _operation("Statistics", analyst)},
        base + "/audit-logs": {
            "get": _operation("Change log of the lists", analyst, params=("limit",))
        },
        "/api/admin/screening": {"post": _operation("Screen a name", analyst, ScreeningIn)},
        "/api/openapi.json": {"get": _operation("This document", analyst)},
        "/api/admin/cases": {
            "get": _operation("List cases", analyst, params=("status", "priority", "assignee"))
        },
        "/api/admin/cases/{case_id}": {
            "get": _operation("Show a case", analyst, params=("case_id",)),
            "put": _operation(
                "Update status, priority, assignee", admin, CaseUpdateIn, ("case_id",)
            ),
        },
        "/api/admin/cases/{case_id}/notes": {
            "post": _operation("Add a note", analyst, NoteIn, ("case_id",))
        },
        "/api/admin/cases/{case_id}/close": {
            "post": _operation("Close with an outcome (labels topic)", admin, CloseIn, ("case_id",))
        },
        "/api/admin/subjects/{subject_id}/evidence": {
            "post": _operation("Keep personal data, sealed", analyst, EvidenceIn, ("subject_id",))
        },
        "/api/admin/subjects/{subject_id}/export": {
            "get": _operation(
                "Everything held about a subject (LGPD)", admin, None, ("subject_id",)
            )
        },
        "/api/admin/subjects/{subject_id}/erase": {
            "post": _operation("Erase a subject: destroy its key", admin, None, ("subject_id",))
        },
        "/v1/decide/{kind}": {
            "post": {
                "summary": "Decide one event synchronously (no key needed: loopback callers)",
                "responses": {
                    "200": {"description": "decision"},
                    "422": {"description": "invalid"},
                },
            }
        },
    }
    from atalaia.admin_insights import openapi_paths

    paths.update(openapi_paths(_operation, analyst, admin))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Atalaia admin API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
