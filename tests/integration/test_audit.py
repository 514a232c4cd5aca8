"""The WORM audit log on the real broker: decisions and admin actions are chained and batched
by the auditor; verify passes on the log and names exactly the record tampered with in a copy;
a proof checks with the standard library; an anchor envelope carries the root and no PII."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr
from stellar_sdk import Keypair, TransactionEnvelope
from stellar_sdk.operation import ManageData

from atalaia.audit import AuditLog, read_log
from atalaia.broker import free_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from engine.audit_log import record_hash
from schemas.codec import WireCodec
from schemas.models import Alert, AuditDetails, AuditRecord
from streams.reader import read_decoded, read_topics
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import (
    admin_call,
    collect,
    run_atalaia,
    scrape_metrics,
    send_events,
)

pytestmark = pytest.mark.integration
CODEC = WireCodec()
SECRET = Keypair.random().secret


@pytest.fixture
def audit_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={"audit_batch_records": 4, "stellar_secret": SecretStr(SECRET)}
    )


@pytest.fixture
def start_auditor(
    audit_settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        settings = audit_settings.model_copy(update={"data_dir": tmp_path / "auditor"})
        auditor = WorkerProcess(settings, tmp_path / "auditor.log", command="auditor").start()
        started.append(auditor)
        return auditor

    yield start
    for auditor in started:
        auditor.stop()


def _wait_for_log(settings: Settings, records: int, batches: int) -> AuditLog:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        log = asyncio.run(read_log(settings))
        count = log.record_count
        if count >= records and len(log.batches) >= batches:
            return log
        time.sleep(1)
    raise AssertionError(f"audit log did not reach {records} records / {batches} batches")


def test_chained_batched_verified_proved_anchored_and_tampering_named(
    tmp_path: Path,
    audit_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_auditor: Callable[[], WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    settings = audit_settings
    topics = Topics(settings.topic_prefix)
    start_worker()
    start_auditor()
    events = [
        # Ids long enough not to turn up by chance in the envelope's ~300 binary bytes (a
        # two-byte "u1" did, about once in twenty runs).
        factories.transaction(
            user_id=f"anchored-user-{n:02d}", occurred_at=datetime.now(UTC) - timedelta(seconds=n)
        )
        for n in range(16)
    ]
    asyncio.run(send_events(settings.bootstrap_servers, topics, events))
    asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in events}))
    log = _wait_for_log(settings, records=len(events), batches=2)
    ids = {r.audit_id for chain in log.chains.values() for _, r in chain}
    assert {f"decision-{e.event_id}" for e in events} <= ids

    verified = run_atalaia(settings, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout

    # Proof: checked with nothing but hashlib, as docs/audit-and-lgpd.md shows.
    batched = next(iter(log.batches))
    chain = log.by_sequence()[batched.chain]
    target = chain[batched.first_sequence + 1].audit_id
    proved = run_atalaia(settings, "audit", "proof", target)
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert _check_with_hashlib(proof)
    forged = {**proof, "record": proof["record"].replace("BACEN", "COAF")}
    assert not _check_with_hashlib(forged)

    # Anchor: a signed envelope with the day's root, nothing else.
    day = batched.closed_at.date().isoformat()
    anchored = run_atalaia(settings, "audit", "anchor", "--day", day)
    assert anchored.returncode == 0, anchored.stderr
    checked = run_atalaia(settings, "audit", "verify", "--anchors")
    assert checked.returncode == 0 and "1 anchors verified" in checked.stdout, checked.stdout

    anchor = asyncio.run(read_log(settings)).anchors[0]
    envelope = base64.b64decode(anchor.envelope_xdr)
    assert bytes.fromhex(anchor.root) in envelope
    for event in events:
        assert event.user_id.encode() not in envelope and event.event_id.encode() not in envelope
    parsed = TransactionEnvelope.from_xdr(anchor.envelope_xdr, anchor.network_passphrase)
    (operation,) = parsed.transaction.operations  # one data entry: the day's name, the root
    assert isinstance(operation, ManageData) and operation.data_name == f"atalaia:{day}"
    assert operation.data_value == bytes.fromhex(anchor.root)

    # Archive: every batch closed before tomorrow, checkable from its file alone.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    archived = run_atalaia(
        settings, "audit", "archive", "--before", tomorrow, "--out", str(tmp_path / "a")
    )
    assert archived.returncode == 0, archived.stderr
    files = sorted((tmp_path / "a").glob("audit-batch-*.json.gz"))
    assert len(files) == len(log.batches)
    for path in files:
        document = json.loads(gzip.decompress(path.read_bytes()))
        batch = document["batch"]
        for index, (record, proof) in enumerate(
            zip(document["records"], document["proofs"], strict=True)
        ):
            check = {
                "record": record,
                "leaf_index": index,
                "tree_size": batch["count"],
                "proof": proof,
                "root": batch["root"],
            }
            assert _check_with_hashlib(check)

    # Tampering, each in its own copy of the audit topic: verify names the record.
    partition, victim = next(
        (p, r)
        for p, chain_records in log.chains.items()
        for _, r in chain_records
        if r.sequence == 2
    )
    same_chain = [r for _, r in log.chains[partition]]
    edited = victim.model_copy(update={"details": AuditDetails(reason="nothing happened")})
    cases = {
        "edit": [edited if r is victim else r for r in same_chain],
        "delete": [r for r in same_chain if r is not victim],
        "reorder": _swap(same_chain, victim),
        "replay": [*same_chain, victim],
    }
    for name, tampered in cases.items():
        copy = f"{settings.topic_prefix}.audit-{name}"
        chains = {p: [r for _, r in c] for p, c in log.chains.items()} | {partition: tampered}
        asyncio.run(_write_copy(settings, copy, chains))
        result = run_atalaia(settings, "audit", "verify", "--topic", copy)
        assert result.returncode == 1, (name, result.stdout)
        failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
        assert all(f"chain {partition}:" in line for line in failures), (name, failures)
        named = "sequence 2 missing" if name == "delete" else victim.audit_id
        assert any(named in line for line in failures), (name, failures)


def _swap(records: list[AuditRecord], victim: AuditRecord) -> list[AuditRecord]:
    index = records.index(victim)
    swapped = list(records)
    swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
    return swapped


async def _write_copy(settings: Settings, topic: str, chains: dict[int, list[AuditRecord]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for partition, records in chains.items():
            for record in records:
                value, key = CODEC.encode(record), record.audit_id.encode()
                await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def _check_with_hashlib(proof: dict[str, object]) -> bool:
    """The procedure docs/audit-and-lgpd.md prints, verbatim in spirit: RFC 6962 leaf and node
    hashes."""

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    record = str(proof["record"]).encode()
    index, size = int(str(proof["leaf_index"])), int(str(proof["tree_size"]))
    h, fn, sn = hashlib.sha256(b"\x00" + record).digest(), index, size - 1
    for sibling_hex in proof["proof"]:  # type: ignore[attr-defined]
        sibling = bytes.fromhex(sibling_hex)
        if fn & 1 or fn == sn:
            h = node(sibling, h)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            h = node(h, sibling)
        fn, sn = fn >> 1, sn >> 1
    return h.hex() == proof["root"]


def test_record_hash_is_over_the_canonical_json() -> None:
    record = AuditRecord.model_validate(
        {
            "audit_id": "a",
            "timestamp": 0,
            "action": "x",
            "actor": {"type": "system", "id": "s"},
            "details": {},
            "compliance": {
                "regulation": "LGPD",
                "retention_period": "7_years",
                "classification": "c",
            },
        }
    )
    body = json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert record_hash(record) == hashlib.sha256(body.encode()).hexdigest()


def test_erasure_shreds_sealed_evidence_and_keeps_the_log_verifiable(
    audit_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_auditor: Callable[[], WorkerProcess],
    start_api: Callable[[], WorkerProcess],
) -> None:
    settings = audit_settings
    start_worker()
    start_auditor()
    start_api()
    pii = {"name": "Ana Souza", "cpf": "529.982.247-25", "email": "ana.souza@example.com"}
    body = {"pii": pii, "reason": "chargeback investigation"}
    status, kept = admin_call(
        settings, "POST", "/api/admin/subjects/ana-1/evidence", body, "analyst"
    )
    assert status == 201, kept
    assert kept["masked"]["cpf"] == "***.***.247-25" and "Souza" not in json.dumps(kept)
    audit_id = kept["audit_id"]
    log = _wait_for_log(settings, records=1, batches=0)
    deadline = time.monotonic() + 60
    while not any(r.audit_id == audit_id for c in log.chains.values() for _, r in c):
        assert time.monotonic() < deadline, "the evidence never reached the audit log"
        time.sleep(1)
        log = asyncio.run(read_log(settings))
    raw = asyncio.run(_raw_audit_bytes(settings))
    assert b"529.982.247-25" not in raw and b"52998224725" not in raw and b"Souza" not in raw

    status, before = admin_call(settings, "GET", "/api/admin/subjects/ana-1/export", None, "admin")
    assert status == 200 and before["key_held"] is True
    (evidence,) = [r for r in before["audit_records"] if r["audit_id"] == audit_id]
    assert evidence["pii"] == pii  # readable for the subject's access request

    status, erased = admin_call(settings, "POST", "/api/admin/subjects/ana-1/erase", None, "admin")
    assert status == 200 and erased["key_destroyed"] is True
    status, after = admin_call(settings, "GET", "/api/admin/subjects/ana-1/export", None, "admin")
    (shredded,) = [r for r in after["audit_records"] if r["audit_id"] == audit_id]
    assert after["key_held"] is False and shredded["pii"] == "erased (key destroyed)"
    assert asyncio.run(_raw_audit_bytes(settings)).count(b"evidence-") >= 1  # still there...
    verified = run_atalaia(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout  # ...and the chain still verifies


def test_an_id_is_written_once_a_different_second_write_leaves_a_conflict(
    audit_settings: Settings, start_auditor: Callable[[], WorkerProcess]
) -> None:
    settings = audit_settings
    start_auditor()
    original = factories.audit_record("once-1")
    rewritten = original.model_copy(update={"details": AuditDetails(request="GET /x 500")})
    topics = Topics(settings.topic_prefix)
    asyncio.run(_write_intake(settings, topics.audit_intake, [original, original, rewritten]))
    log = _wait_for_log(settings, records=2, batches=0)
    chained = [r for c in log.chains.values() for _, r in c]
    assert [r.audit_id for r in chained if r.audit_id == "once-1"] == ["once-1"]
    (conflict,) = [r for r in chained if r.action == "audit_conflict"]
    assert conflict.details.reason == "second write of once-1 with different content refused"
    alerts, _ = asyncio.run(read_decoded(settings.bootstrap_servers, {topics.alerts: (Alert,)}))
    (alert,) = alerts
    assert (alert.rule, alert.severity) == ("audit_conflict", "CRITICAL")
    assert alert.event_id == f"audit:{conflict.chain}:{conflict.sequence}"


async def _write_intake(settings: Settings, topic: str, records: list[AuditRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(topic, CODEC.encode(record), key=record.audit_id.encode())
    finally:
        await producer.stop()


async def _raw_audit_bytes(settings: Settings) -> bytes:
    topics = Topics(settings.topic_prefix)
    chunks: list[bytes] = []
    records = read_topics(
        settings.bootstrap_servers, [topics.audit, topics.audit_intake], True, 2.0
    )
    async with aclosing(records):
        async for record in records:
            chunks.append(record.value or b"")
    return b"".join(chunks)


def test_a_quiet_chain_gets_its_batch_without_more_traffic(
    audit_settings: Settings, tmp_path: Path
) -> None:
    """Batches are due after 2 s and nothing arrives after the three records: the auditor's
    check cuts them anyway, and the log verifies."""
    settings = audit_settings.model_copy(
        update={
            "audit_batch_records": 1000,
            "audit_batch_seconds": 2,
            "data_dir": tmp_path / "auditor",
            "metrics_port": free_port(),
        }
    )
    auditor = WorkerProcess(settings, tmp_path / "auditor.log", command="auditor").start()
    try:
        topics = Topics(settings.topic_prefix)
        records = [factories.audit_record(f"quiet-{n}") for n in range(3)]
        asyncio.run(_write_intake(settings, topics.audit_intake, records))
        deadline = time.monotonic() + 90
        log = asyncio.run(read_log(settings))
        while sum(b.count for b in log.batches) < len(records) and time.monotonic() < deadline:
            time.sleep(1)
            log = asyncio.run(read_log(settings))
        assert sum(b.count for b in log.batches) == len(records)
        verified = run_atalaia(settings, "audit", "verify")
        assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout
        assert settings.metrics_port is not None
        metrics = scrape_metrics(settings.metrics_port)
        assert metrics["atalaia_audit_records_total{}"] == len(records)
        assert metrics["atalaia_audit_batches_total{cause=quiet chain}"] == len(log.batches)
        assert metrics["atalaia_audit_conflicts_total{}"] == 0
    finally:
        auditor.stop()
