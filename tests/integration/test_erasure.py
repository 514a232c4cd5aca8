"""Personal data typed as free text (a case note, a closing note, an assignee, a reason, a
user agent) leaves no readable trace once its subject is erased: not on any topic (the
write-once audit log included), not in any RocksDB store, not in the analytics store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from rocksdict import AccessType, Options, Rdict

from atalaia.admin_cli import API_KEY_ENV
from atalaia.analytics import AnalyticsError, run_query
from atalaia.broker import free_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from sinks.clickhouse import AnalyticsStore, connect
from streams.reader import read_topics
from tests import factories
from tests.integration.helpers import API_KEYS, admin_call
from tests.integration.test_admin_api import _decision, _wait_for_case

pytestmark = pytest.mark.integration

NAME, EMAIL, PHONE, CPF, IP = (
    "Maria Silva Santos",
    "maria.santos@example.com",
    "+55 11 98765-4321",
    "529.982.247-25",
    "203.0.113.77",
)
TRACES = [NAME, "Maria Silva", "maria.santos", "98765-4321", "98765432", CPF, "52998224725", IP]
"""Any of these, found anywhere, is personal data kept readable."""
NOTE = f"Falei com {NAME} ({EMAIL}, tel {PHONE}, CPF {CPF}), acesso de {IP}"


def _found(blob: bytes) -> list[str]:
    return [trace for trace in TRACES if trace.encode() in blob]


async def _every_record(settings: Settings) -> bytes:
    """The keys and values of every record on every topic of this deployment (its own and
    its workers' changelogs)."""
    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await probe.start()
    try:
        names = [
            t for t in await probe.topics() if settings.topic_prefix in t or settings.app_id in t
        ]
    finally:
        await probe.stop()
    found = bytearray()
    records = read_topics(settings.bootstrap_servers, names, stop_when_caught_up=True)
    async with aclosing(records):
        async for record in records:
            found += (record.key or b"") + b"\n" + (record.value or b"") + b"\n"
    return bytes(found)


def _rocksdb_contents(root: Path) -> Iterator[bytes]:
    """Every key and value of every RocksDB under ``root`` (read, so compression hides
    nothing), and every file's bytes."""
    for current in root.rglob("CURRENT"):
        options = Options(raw_mode=True)
        db = Rdict(str(current.parent), options, access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                yield key + b"\n" + value
        finally:
            db.close()
    for path in root.rglob("*"):
        if path.is_file():
            yield path.read_bytes()


def test_erasing_a_subject_leaves_no_readable_trace_of_free_text(
    api_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_api: Callable[[], WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEYS["analyst"])  # the sink's queries take it
    settings = api_settings.model_copy(
        update={
            "analytics_target": str(tmp_path / "analytics"),
            "sink_batch_ms": 200,
            "sink_port": free_port(),
        }
    )
    start_api()  # first: it waits for its port, the others start meanwhile
    worker = start_worker()
    auditor = WorkerProcess(
        settings.model_copy(update={"data_dir": tmp_path / "auditor"}),
        tmp_path / "auditor.log",
        command="auditor",
    ).start()
    sink = WorkerProcess(
        settings.model_copy(update={"data_dir": tmp_path / "sink"}), tmp_path / "sink.log", "sink"
    ).start()
    try:
        subject = "erase-me"
        reason = f"mule ring, contact {EMAIL} / {PHONE}"
        entry = {"entity_type": "user", "value": subject, "severity": "HIGH", "reason": reason}
        assert admin_call(settings, "POST", "/api/admin/blacklist", entry)[0] == 201
        login = factories.login(
            user_id=subject, success=True, network_flags=[], occurred_at=datetime.now(UTC)
        )
        _decision(settings, login)
        case = _wait_for_case(settings, f"case:user:{subject}:1")
        path = f"/api/admin/cases/{case['case_id']}"

        status, noted = admin_call(settings, "POST", path + "/notes", {"text": NOTE}, "analyst")
        assert status == 200 and noted["notes"][0]["text"] == NOTE  # sealed, and opens
        assert admin_call(settings, "PUT", path, {"assignee": EMAIL}, "admin")[0] == 200
        evidence = {"pii": {"name": NAME, "cpf": CPF}, "reason": f"KYC for {EMAIL}"}
        evidence_path = f"/api/admin/subjects/{subject}/evidence"
        assert admin_call(settings, "POST", evidence_path, evidence, "analyst")[0] == 201
        close = {"outcome": "fraud_confirmed", "note": f"confirmado: {NAME}, {PHONE}"}
        assert admin_call(settings, "POST", path + "/close", close, "admin")[0] == 200

        erased = admin_call(settings, "POST", f"/api/admin/subjects/{subject}/erase")
        assert erased == (200, {"subject_id": subject, "key_destroyed": True})
        shown = admin_call(settings, "GET", path, role="analyst")[1]
        assert [n["text"] for n in shown["notes"]] == ["erased (key destroyed)"] * 2
        _wait_for_sink(settings)
    finally:
        sink.stop()
        auditor.stop()
        worker.stop()

    on_topics = asyncio.run(_every_record(settings))
    assert case["case_id"].encode() in on_topics  # the read sees the case's records...
    assert b"case_closed" in on_topics and b"lgpd_erasure" in on_topics
    assert _found(on_topics) == []  # ...and nothing readable of what was typed
    stored_locally = list(_rocksdb_contents(tmp_path / "node-0"))
    assert any(b"user:" + subject.encode() in blob for blob in stored_locally)  # its cases
    for blob in stored_locally:
        assert _found(blob) == []
    store = AnalyticsStore(connect(settings.analytics))
    try:
        _, cases = store.query_read_only("SELECT * FROM cases")
        _, audit = store.query_read_only("SELECT record FROM audit")
    finally:
        store.client.close()  # one embedded engine per process
    stored = repr([*cases, *audit]).encode()
    assert subject.encode() in stored and b"case_closed" in stored
    assert _found(stored) == []


def _wait_for_sink(settings: Settings) -> None:
    """Until the sink holds the closed case and the audit record of its closing."""
    deadline = time.monotonic() + 90
    query = (
        "SELECT (SELECT count() FROM cases FINAL WHERE status = 'closed') * "
        "(SELECT count() FROM audit WHERE action = 'case_closed')"
    )
    while time.monotonic() < deadline:
        try:
            if run_query(settings, query)[1][0][0]:
                return
        except AnalyticsError:  # the sink holds the store and does not answer yet
            pass
        time.sleep(1)
    raise AssertionError("the sink did not store the closed case and its audit record")
