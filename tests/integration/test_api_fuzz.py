"""Hostile calls at a real ``atalaia api``: every endpoint taking a body, a path or a query
parameter answers 4xx (or its ordinary 2xx), never 5xx; and a call that does end in 500 is
audited like any other."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from atalaia.admin_api import AdminApi
from atalaia.supervise import WorkerProcess
from config.auth import key_digest
from config.rules import load_rules
from config.settings import Settings
from schemas.models import AuditRecord
from sinks.key_store import SubjectKeyStore
from streams.admin_state import AdminState
from streams.topics import Topics
from tests.hostile import ROUTES, hostile_calls
from tests.integration.fuzzing import call_all
from tests.integration.helpers import API_KEYS, admin_call, read_all

pytestmark = pytest.mark.integration

CALLS = 1_700


def test_hostile_calls_get_4xx_never_5xx(
    api_settings: Settings, start_api: Callable[[], WorkerProcess]
) -> None:
    api = start_api()
    calls = list(hostile_calls(CALLS))
    answered = asyncio.run(call_all(api_settings.api_port, calls))  # type: ignore[arg-type]

    by_route = Counter((call.route, status) for call, status in answered)
    print(sorted(by_route.items()))
    assert len(answered) == CALLS
    assert api.alive
    failed = [(c.method, c.path[:80], s) for c, s in answered if not 200 <= s < 500]
    assert failed == []
    assert all(200 <= status < 500 for _, status in answered)
    # Each route's checks were reached (the export alone takes no input it could refuse).
    refused = {call.route for call, status in answered if 400 <= status < 500}
    assert refused == {route for _, route, _ in ROUTES} - {"/api/admin/blacklist/export"}
    log = api.log_file.read_text(errors="replace")
    assert "Traceback" not in log

    # A formula typed as a reason is exported as text, not as a formula.
    entry = {"entity_type": "ip", "value": "198.51.100.99", "severity": "LOW", "reason": "=1+1"}
    assert admin_call(api_settings, "POST", "/api/admin/blacklist", entry)[0] in (200, 201)
    status, exported = admin_call(api_settings, "GET", "/api/admin/blacklist/export?format=csv")
    assert status == 200 and ",'=1+1," in exported and ",=1+1," not in exported


def test_an_admin_call_ending_in_500_is_audited(engine_settings: Settings, tmp_path: Path) -> None:
    """A key store whose keys were wrapped under another master key: the export fails in
    the handler (500, one line, no trace for the caller), and its audit record is written."""
    keys_dir = tmp_path / "keys"
    other = SubjectKeyStore(keys_dir, bytes(32))
    other.key_for("u-500")
    other.close()
    admin_key = f"admin-key:admin:{key_digest(API_KEYS['admin'])}"
    settings = engine_settings.model_copy(update={"api_keys": SecretStr(admin_key)})
    topics = Topics(settings.topic_prefix)

    async def call() -> tuple[int, dict[str, str]]:
        hash_key = settings.pii_hash_key.get_secret_value().encode()
        store = AdminState(settings.bootstrap_servers, topics, hash_key)
        keys = SubjectKeyStore(keys_dir, bytes.fromhex("11" * 32))
        await store.start()
        rules = load_rules()
        app = web.Application()
        app.add_routes(AdminApi(settings, store, lambda: rules, keys).routes())
        try:
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                response = await client.get(
                    "/api/admin/subjects/u-500/export",
                    headers={"Authorization": f"Bearer {API_KEYS['admin']}"},
                )
                return response.status, await response.json()
        finally:
            await store.stop()
            keys.close()

    status, body = asyncio.run(call())
    assert status == 500
    assert body == {"error": "InternalError", "detail": "the request failed; see the API's log"}
    records = asyncio.run(read_all(settings.bootstrap_servers, topics.audit_intake, AuditRecord))
    lines = [r.details.request for r in records if r.action == "admin_call"]
    assert lines == ["GET /api/admin/subjects/{subject_id}/export 500"]
