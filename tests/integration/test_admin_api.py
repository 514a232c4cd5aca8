"""The admin API against a real broker and worker: lists change decisions, roles are enforced,
every call is audited, imports and screening work, values never come back in clear."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atalaia.supervise import WorkerProcess
from config.settings import Settings
from engine.identities import keyed_hash, normalise
from schemas.codec import WireCodec
from schemas.models import AuditRecord, Decision, InputEvent, Label, ListEntityType, Verdict
from streams.topics import Topics
from tests import factories
from tests.integration.conftest import InProcessApi
from tests.integration.helpers import API_KEYS, admin_call, collect, read_all, send_events

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent.parent / "data"
CODEC = WireCodec()


def _decision(settings: Settings, event: InputEvent) -> Decision:
    topics = Topics(settings.topic_prefix)
    asyncio.run(send_events(settings.bootstrap_servers, topics, [event]))
    out = asyncio.run(collect(settings.bootstrap_servers, topics, {event.event_id}))
    return next(d for _, d in out.decisions if d.event_id == event.event_id)


def _now_tx(user: str, **fields: object) -> factories.TransactionEvent:
    return factories.transaction(
        user_id=user,
        network_flags=[],
        occurred_at=datetime.now(UTC) - timedelta(seconds=2),
        **fields,
    )


def test_a_listed_user_is_blocked_an_allow_listed_one_is_not_and_removal_frees_them(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    start_worker()
    start_api()
    entry = {"entity_type": "user", "value": "mallory", "severity": "HIGH", "reason": "mule"}
    status, added = admin_call(api_settings, "POST", "/api/admin/blacklist", entry)
    assert status == 201, added
    assert added["masked_value"] != "mallory" and "mallory" not in json.dumps(added)

    listed = _decision(api_settings, _now_tx("mallory"))
    assert listed.decision is Verdict.BLOCK
    codes = [r.code for r in listed.reasons]
    assert "BLACKLIST_LIST_HIT" in codes and "LIST_SEVERITY_BLOCK" in codes
    assert [f for f in listed.features if f.startswith("list.")] == [
        "list.block.user.HIGH.MANUAL.***ory"
    ]

    allow = {**entry, "kind": "ALLOW", "severity": "LOW", "reason": "verified merchant"}
    assert admin_call(api_settings, "POST", "/api/admin/blacklist", allow)[0] == 201
    overridden = _decision(api_settings, _now_tx("mallory"))
    assert overridden.decision is Verdict.ALLOW
    assert "WHITELIST_OVERRIDE" in [r.code for r in overridden.reasons]
    audited = [r for r in _intake(api_settings) if r.action == "whitelist_override"]
    assert [r.details.transaction_id for r in audited] == [overridden.event_id]

    for kind in ("ALLOW", "BLOCK"):
        status, removed = admin_call(
            api_settings, "DELETE", f"/api/admin/blacklist/user/mallory?kind={kind}"
        )
        assert (
            status == 200
            and removed["status"] == "removed"
            and removed["removed_by"] == "admin-key"
        )
    freed = _decision(api_settings, _now_tx("mallory"))
    assert not {"BLACKLIST_LIST_HIT", "WHITELIST_OVERRIDE"} & {r.code for r in freed.reasons}
    assert admin_call(api_settings, "DELETE", "/api/admin/blacklist/user/mallory")[0] == 404


def _bare_gift(giver: str) -> factories.GiftEvent:
    """A gift event naming its giver only, no e-mail, phone or document."""
    at = datetime.now(UTC) - timedelta(seconds=2)
    none = {"email_hash": None, "phone_hash": None, "document_hash": None}
    return factories.gift(giver_user_id=giver, occurred_at=at, network_flags=[], **none)


def test_a_listed_email_on_a_user_s_payment_lists_the_user_for_gifts_that_carry_none(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    start_worker()
    start_api()
    entry = {"entity_type": "email", "value": "eve@example.com", "severity": "HIGH", "reason": "r"}
    assert admin_call(api_settings, "POST", "/api/admin/blacklist", entry)[0] == 201
    key = api_settings.pii_hash_key.get_secret_value().encode()
    email_hash = keyed_hash(normalise(ListEntityType.EMAIL, "eve@example.com"), key)
    paid = _decision(api_settings, _now_tx("eve", email_hash=email_hash))
    assert paid.decision is Verdict.BLOCK
    gift = _decision(api_settings, _bare_gift("eve"))
    assert gift.decision is Verdict.BLOCK
    assert [f for f in gift.features if f.startswith("list.")] == [
        "list.block.user.HIGH.AUTOMATED.***e"
    ]
    linked = [r for r in _intake(api_settings) if r.details.correlation_id == paid.event_id]
    assert [(r.action, r.actor.id, r.details.source) for r in linked] == [
        ("blacklist_add", "engine", "AUTOMATED")
    ]
    # The API shows the derived entry; removing the user's listing frees the user.
    query = "/api/admin/blacklist?entity_type=user&source=AUTOMATED"
    deadline = time.monotonic() + 30
    while not admin_call(api_settings, "GET", query)[1]["entries"]:
        assert time.monotonic() < deadline, "the API never saw the derived entry"
        time.sleep(0.2)
    assert admin_call(api_settings, "DELETE", "/api/admin/blacklist/user/eve")[0] == 200
    freed = _decision(api_settings, _bare_gift("eve"))
    assert not [f for f in freed.features if f.startswith("list.")]


def test_the_seeds_sanctioned_wallet_blocks_everything_and_freezes(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    wallet = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # Tornado Cash, a shipped default
    decision = _decision(
        api_settings, _now_tx("alice", counterparty_pix_key_hash=None, counterparty_wallet=wallet)
    )
    assert decision.decision is Verdict.BLOCK
    assert decision.features["list.block.wallet.CRITICAL.OFAC.0x098b...2f96"] == 1
    assert {"FREEZE_ACCOUNT", "INTERNAL_ALERT"} <= {a.value for a in decision.actions}
    assert wallet.lower()[2:] not in decision.model_dump_json().lower()
    print(decision.model_dump_json(indent=2))  # the closing note's example


JSONL_ROW = (
    b'{"entity_type":"user","value":"u-1","severity":"LOW","reason":"t","source":"MANUAL"}\n'
)
NO_CASE = "/api/admin/cases/case:user:nobody:1"
SUBJECT = "/api/admin/subjects/matrix-subject"
"""Case routes are exercised on a case that does not exist: served means 404, not 401/403."""
ROUTES: list[tuple[str, str, object, str]] = [
    ("GET", "/api/openapi.json", None, "analyst"),
    ("GET", "/api/admin/blacklist", None, "analyst"),
    (
        "POST",
        "/api/admin/blacklist",
        {"entity_type": "ip", "value": "203.0.113.9", "severity": "LOW", "reason": "t"},
        "admin",
    ),
    ("DELETE", "/api/admin/blacklist/ip/203.0.113.9", None, "admin"),
    (
        "POST",
        "/api/admin/blacklist/check",
        {"entities": [{"entity_type": "ip", "value": "203.0.113.9"}]},
        "analyst",
    ),
    ("POST", "/api/admin/blacklist/import?format=jsonl", None, "admin"),
    ("GET", "/api/admin/blacklist/export", None, "admin"),
    ("GET", "/api/admin/blacklist/statistics", None, "analyst"),
    ("GET", "/api/admin/blacklist/audit-logs", None, "analyst"),
    ("POST", "/api/admin/screening", {"name": "Ana Souza"}, "analyst"),
    ("GET", "/api/admin/cases", None, "analyst"),
    ("GET", NO_CASE, None, "analyst"),
    ("PUT", NO_CASE, {"assignee": "ana"}, "admin"),
    ("POST", NO_CASE + "/notes", {"text": "n"}, "analyst"),
    ("POST", NO_CASE + "/close", {"outcome": "legitimate"}, "admin"),
    ("POST", SUBJECT + "/evidence", {"pii": {"name": "Ana"}, "reason": "r"}, "analyst"),
    ("GET", SUBJECT + "/export", None, "admin"),
    ("POST", SUBJECT + "/erase", None, "admin"),
]


def test_auth_matrix_every_endpoint_and_every_call_is_audited(
    api_settings: Settings, start_api_in_process: Callable[[], InProcessApi]
) -> None:
    """No key: 401; a wrong key: 401; an analyst on an admin endpoint: 403; the right role:
    served. Refused calls change nothing. Every call is on the audit topic with its actor."""
    start_api_in_process()
    before = admin_call(api_settings, "GET", "/api/admin/blacklist?status=all", role="analyst")[1]
    matrix: dict[str, dict[str, int]] = {}
    for method, path, body, needed in ROUTES:
        payload = JSONL_ROW if path.endswith("format=jsonl") else None
        row = matrix.setdefault(f"{method} {path}", {})
        for role in (None, "intruder", "analyst", "admin"):
            if role == "admin" and needed == "admin":
                continue  # served below, once the refusals are known to have changed nothing
            row[str(role)] = admin_call(api_settings, method, path, body, role, payload)[0]
        assert row["None"] == 401 and row["intruder"] == 401, (path, row)
        served = 404 if path.startswith(NO_CASE) else 201 if path.endswith("/evidence") else 200
        assert row["analyst"] == (403 if needed == "admin" else served), (path, row)
    after = admin_call(api_settings, "GET", "/api/admin/blacklist?status=all", role="analyst")[1]
    assert after == before  # refused calls changed nothing
    for method, path, body, needed in ROUTES:
        if needed == "admin":
            payload = JSONL_ROW if path.endswith("format=jsonl") else None
            status = admin_call(api_settings, method, path, body, "admin", payload)[0]
            matrix[f"{method} {path}"]["admin"] = status
            assert status in ((404,) if path.startswith(NO_CASE) else (200, 201)), (path, status)
    print(json.dumps(matrix, indent=1))  # the closing note's auth matrix

    records = _intake(api_settings)
    calls = [r for r in records if r.action == "admin_call"]
    assert len(calls) >= sum(len(row) for row in matrix.values())
    actors = {(r.actor.id, r.actor.type.value) for r in calls}
    assert {
        ("unauthenticated", "user"),
        ("analyst-key", "analyst"),
        ("admin-key", "admin"),
    } <= actors
    assert any(r.details.request == "POST /api/admin/blacklist 403" for r in calls)
    changes = [r for r in records if r.action in ("blacklist_add", "blacklist_remove")]
    assert {r.action for r in changes} == {"blacklist_add", "blacklist_remove"}
    assert all("203.0.113.9" not in r.model_dump_json() for r in records)


def test_invalid_input_gets_422_naming_the_field(
    api_settings: Settings, start_api_in_process: Callable[[], InProcessApi]
) -> None:
    start_api_in_process()
    cases = [
        (
            "POST",
            "/api/admin/blacklist",
            {
                "entity_type": "document",
                "value": "111.111.111-11",
                "severity": "HIGH",
                "reason": "x",
            },
            "value",
        ),
        (
            "POST",
            "/api/admin/blacklist",
            {"entity_type": "planet", "value": "x", "severity": "HIGH", "reason": "x"},
            "entity_type",
        ),
        (
            "POST",
            "/api/admin/blacklist",
            {"entity_type": "ip", "value": "1.2.3.4", "severity": "HUGE", "reason": "x"},
            "severity",
        ),
        ("POST", "/api/admin/blacklist/check", {"entities": []}, "entities"),
        ("GET", "/api/admin/blacklist?severity=HUGE", None, "severity"),
        ("DELETE", "/api/admin/blacklist/planet/x", None, "entity_type"),
    ]
    for method, path, body, field in cases:
        status, answer = admin_call(api_settings, method, path, body)
        assert (status, answer.get("field")) == (422, field), (path, answer)
        assert "111.111.111-11" not in json.dumps(answer)


def test_imports_checks_and_screening(
    api_settings: Settings, start_api_in_process: Callable[[], InProcessApi]
) -> None:
    start_api_in_process()
    csv_text = (DATA / "blacklist_sample.csv").read_bytes()
    status, result = admin_call(
        api_settings, "POST", "/api/admin/blacklist/import?format=csv", raw=csv_text
    )
    assert status == 200 and result["imported"] > 0
    assert [e["line"] for e in result["errors"]] == [6, 10, 11]
    ofac = (DATA / "ofac_sdn_sample.xml").read_bytes()
    status, result = admin_call(
        api_settings, "POST", "/api/admin/blacklist/import?format=ofac-xml", raw=ofac
    )
    assert status == 200 and result["names"] == 6 and result["imported"] >= 2, result

    status, stats = admin_call(
        api_settings, "GET", "/api/admin/blacklist/statistics", role="analyst"
    )
    assert stats["active_by_source"]["OFAC"] >= 4 and stats["watchlist_names"] == 6

    status, exported = admin_call(api_settings, "GET", "/api/admin/blacklist/export")
    lines = [json.loads(line) for line in exported.splitlines()]
    assert len(lines) == sum(stats["active_by_kind"].values())
    assert all(
        len(line["value_key"]) in (64,) or line["entity_type"] == "ip_range" for line in lines
    )

    check = {
        "entities": [
            {"entity_type": "email", "value": "someone@Guerrillamail.com"},
            {"entity_type": "ip", "value": "8.8.8.8"},
        ]
    }
    status, checked = admin_call(
        api_settings, "POST", "/api/admin/blacklist/check", check, role="analyst"
    )
    domain, clean = checked["results"]
    assert domain["listed"] and domain["hits"][0]["entity_type"] == "email_domain"
    assert domain["severity"] == "MEDIUM" and not clean["listed"]  # the import raised it
    assert "someone" not in json.dumps(checked)

    query = {"name": "Dmitri Kovalenko"}  # listed as KOVALENKO, Dmitri Sergeyevich
    status, screened = admin_call(
        api_settings, "POST", "/api/admin/screening", query, role="analyst"
    )
    assert status == 200, screened
    top = screened["matches"][0]
    assert top["list_name"] == "OFAC" and top["score"] >= screened["min_score"]
    assert "kovalenko" in top["breakdown"]["normalised_candidate"]
    nobody = {"name": "Maria Aparecida Gonçalves"}
    assert (
        admin_call(api_settings, "POST", "/api/admin/screening", nobody, role="analyst")[1][
            "matches"
        ]
        == []
    )


def test_a_review_opens_a_case_analysts_note_it_admins_close_it_into_a_label(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    start_worker()
    start_api()
    entry = {"entity_type": "user", "value": "eve", "severity": "HIGH", "reason": "mule"}
    assert admin_call(api_settings, "POST", "/api/admin/blacklist", entry)[0] == 201
    login = factories.login(
        user_id="eve", success=True, network_flags=[], occurred_at=datetime.now(UTC)
    )
    assert _decision(api_settings, login).decision is Verdict.REVIEW

    case = _wait_for_case(api_settings, "case:user:eve:1")
    assert case["status"] == "open" and case["priority"] == "HIGH"
    assert case["event_ids"] == [login.event_id] and "BLACKLIST_LIST_HIT" in case["reason_codes"]
    path = f"/api/admin/cases/{case['case_id']}"

    status, noted = admin_call(
        api_settings, "POST", path + "/notes", {"text": "KYC docs requested"}, "analyst"
    )
    assert status == 200 and [n["text"] for n in noted["notes"]] == ["KYC docs requested"]
    assert noted["notes"][0]["author"] == "analyst-key"
    close = {"outcome": "fraud_confirmed", "note": "confirmed with the bank"}
    assert admin_call(api_settings, "POST", path + "/close", close, "analyst")[0] == 403
    assert admin_call(api_settings, "PUT", path, {"status": "closed"}, "admin")[0] == 422
    status, closed = admin_call(api_settings, "POST", path + "/close", close, "admin")
    assert status == 200, closed
    assert (closed["status"], closed["outcome"], closed["closed_by"]) == (
        "closed",
        "fraud_confirmed",
        "admin-key",
    )
    assert admin_call(api_settings, "POST", path + "/notes", {"text": "late"}, "analyst")[0] == 409
    listed = admin_call(api_settings, "GET", "/api/admin/cases?status=closed", role="analyst")[1]
    assert [c["case_id"] for c in listed["cases"]] == [case["case_id"]]

    labels = asyncio.run(
        read_all(api_settings.bootstrap_servers, Topics(api_settings.topic_prefix).labels, Label)
    )
    assert [(lab.label_id, lab.is_fraud, lab.event_ids) for lab in labels] == [
        (case["case_id"], True, [login.event_id])
    ]
    actions = [r.action for r in _intake(api_settings)]
    assert {"case_created", "case_updated", "case_closed"} <= set(actions)


def _wait_for_case(settings: Settings, case_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, case = admin_call(settings, "GET", f"/api/admin/cases/{case_id}", role="analyst")
        if status == 200:
            return dict(case)
        time.sleep(0.2)
    raise AssertionError(f"{case_id} was not opened")


def _cli(settings: Settings, role: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ATALAIA_API_KEY"}
    if role is not None:
        env["ATALAIA_API_KEY"] = API_KEYS[role]
    command = [sys.executable, "-m", "atalaia", *args[:2], "--port", str(settings.api_port)]
    return subprocess.run(
        [*command, *args[2:]], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_cli_drives_the_same_api_with_the_same_roles(
    api_settings: Settings, start_api_in_process: Callable[[], InProcessApi]
) -> None:
    start_api_in_process()
    add = ("lists", "add", "email", "Crook@Example.com", "--severity", "HIGH", "--reason", "r")
    refused = _cli(api_settings, "analyst", *add)
    assert refused.returncode == 1 and "403" in refused.stderr and "Traceback" not in refused.stderr
    nokey = _cli(api_settings, None, *add)
    assert nokey.returncode == 2 and "ATALAIA_API_KEY" in nokey.stderr
    added = _cli(api_settings, "admin", *add)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["masked_value"].endswith("@example.com")
    checked = _cli(api_settings, "analyst", "lists", "check", "email", "crook@example.com")
    assert json.loads(checked.stdout)["results"][0]["listed"] is True
    exported = _cli(api_settings, "admin", "lists", "export")
    assert "crook" not in exported.stdout.lower() and exported.stdout.count("\n") >= 6
    removed = _cli(api_settings, "admin", "lists", "remove", "email", "crook@example.com")
    assert json.loads(removed.stdout)["status"] == "removed"
    cases = _cli(api_settings, "analyst", "cases", "list")
    assert json.loads(cases.stdout) == {"total": 0, "cases": []}


def _intake(settings: Settings) -> list[AuditRecord]:
    """What the API and the worker sent to the audit intake."""
    topic = Topics(settings.topic_prefix).audit_intake
    return asyncio.run(read_all(settings.bootstrap_servers, topic, AuditRecord))
