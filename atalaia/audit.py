"""``atalaia auditor`` (the audit chains' writer) and ``atalaia audit verify|proof|anchor``
(``anchor --schedule``: the daily anchor as a service).

verify and proof read the topics whole and recompute everything; they trust nothing the
auditor kept for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections import defaultdict
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from atalaia.publish import OutRecord, publish
from config.rules import load_rules
from config.settings import Settings
from engine.anchor import build_anchor, check_anchor, day_batches
from engine.audit_log import Problem, canonical, verify_batches, verify_chain
from engine.merkle import inclusion_proof, leaf_hash
from schemas.codec import DecodeError, WireCodec
from schemas.models import AuditAnchor, AuditBatch, AuditRecord
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics

IDLE_S = 2.0
_log = logging.getLogger(__name__)


class AuditError(Exception):
    """An audit command cannot do what was asked; one line for the operator."""


def run_auditor(settings: Settings) -> None:
    from agents.auditor import register_auditor  # the worker's dependencies only when running one
    from streams.app import new_app, run_until_stopped, serve_ops_of, utc_now
    from streams.ops import Readiness

    alert_rules = load_rules(settings.rules_path).alerts
    asyncio.run(ensure_topics(settings))
    app = new_app(settings, f"{settings.app_id}-audit")
    window_s = settings.batch_window_ms / 1000
    register_auditor(app, settings, alert_rules, utc_now, settings.batch_size, window_s)
    serve_ops_of(app, settings, Readiness("auditor"))
    run_until_stopped(app, settings, "auditor")


@dataclass
class AuditLog:
    """Everything on the audit topics, as read."""

    chains: dict[int, list[tuple[int, AuditRecord]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    batches: list[AuditBatch] = field(default_factory=list)
    anchors: list[AuditAnchor] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        return sum(len(records) for records in self.chains.values())

    def by_sequence(self) -> dict[int, dict[int, AuditRecord]]:
        return {
            chain: {r.sequence: r for _, r in records if r.sequence is not None}
            for chain, records in self.chains.items()
        }


async def read_log(settings: Settings, audit_topic: str | None = None) -> AuditLog:
    topics = Topics(settings.topic_prefix)
    audit = audit_topic or topics.audit
    codec = WireCodec()
    log = AuditLog()
    names = [audit, topics.audit_batches, topics.audit_anchors]
    records = read_topics(settings.bootstrap_servers, names, True, IDLE_S)
    async with aclosing(records):
        async for record in records:
            try:
                if record.topic == audit:
                    entry = codec.decode(record.value, (AuditRecord,))
                    log.chains[record.partition].append((record.offset, entry))
                elif record.topic == topics.audit_batches:
                    log.batches.append(codec.decode(record.value, (AuditBatch,)))
                else:
                    log.anchors.append(codec.decode(record.value, (AuditAnchor,)))
            except DecodeError as exc:
                where = f"offset {record.offset} of {record.topic}"
                log.unreadable.append(Problem(record.partition, where, f"unreadable: {exc}"))
    for chain in log.chains.values():
        chain.sort(key=lambda item: item[0])
    return log


def verify_log(log: AuditLog, anchors: bool) -> list[Problem]:
    """Every problem in the chains and batches (and the anchors) as read."""
    problems = list(log.unreadable)
    for chain, records in sorted(log.chains.items()):
        problems += verify_chain(chain, records)
    problems += verify_batches(log.by_sequence(), log.batches)
    if anchors:
        for anchor in log.anchors:
            problems += [
                Problem(None, f"anchor {anchor.day}", p) for p in check_anchor(anchor, log.batches)
            ]
    return problems


def verify_main(settings: Settings, audit_topic: str | None, anchors: bool) -> int:
    log = asyncio.run(read_log(settings, audit_topic))
    problems = verify_log(log, anchors)
    count = log.record_count
    if problems:
        for problem in problems:
            print(f"FAIL {problem}")
        print(f"{len(problems)} problem(s) in {count} records, {len(log.batches)} batches")
        return 1
    checked = f", {len(log.anchors)} anchors" if anchors else ""
    print(
        f"OK: {count} records in {len(log.chains)} chains, {len(log.batches)} batches"
        f"{checked} verified"
    )
    return 0


def proof_of(log: AuditLog, record_id: str) -> dict[str, Any]:
    """The record's canonical JSON and its inclusion proof in its batch (and, when anchored,
    of the batch root in the day's root)."""
    found = [
        (chain, record)
        for chain, records in log.chains.items()
        for _, record in records
        if record.audit_id == record_id
    ]
    if not found:
        raise AuditError(f"no audit record {record_id}")
    chain, record = found[-1]
    sequence = record.sequence or 0
    batch = next(
        (
            b
            for b in log.batches
            if b.chain == chain and b.first_sequence <= sequence <= b.last_sequence
        ),
        None,
    )
    if batch is None:
        raise AuditError(
            f"{record_id} is not in a batch yet (batches are cut every N records or hour)"
        )
    chain_records = log.by_sequence()[chain]
    leaves = [
        leaf_hash(canonical(chain_records[s]))
        for s in range(batch.first_sequence, batch.last_sequence + 1)
    ]
    index = sequence - batch.first_sequence
    proof: dict[str, Any] = {
        "record": canonical(record).decode(),
        "batch_id": batch.batch_id,
        "leaf_index": index,
        "tree_size": len(leaves),
        "proof": [h.hex() for h in inclusion_proof(leaves, index)],
        "root": batch.root,
    }
    anchor = next((a for a in log.anchors if batch.batch_id in a.batch_ids), None)
    if anchor is not None:
        by_id = {b.batch_id: b for b in log.batches}
        roots = [leaf_hash(bytes.fromhex(by_id[i].root)) for i in anchor.batch_ids]
        position = anchor.batch_ids.index(batch.batch_id)
        proof["anchor"] = {
            "day": anchor.day,
            "leaf_index": position,
            "tree_size": len(roots),
            "proof": [h.hex() for h in inclusion_proof(roots, position)],
            "root": anchor.root,
            "stellar_tx_hash": anchor.tx_hash,
            "network_passphrase": anchor.network_passphrase,
        }
    return proof


def proof_main(settings: Settings, record_id: str) -> int:
    log = asyncio.run(read_log(settings))
    print(json.dumps(proof_of(log, record_id), indent=2, ensure_ascii=False))
    return 0


def _anchor_secret(settings: Settings) -> str:
    secret = settings.stellar_secret.get_secret_value()
    if not secret:
        raise AuditError("set ATALAIA_STELLAR_SECRET to the Stellar secret seed that signs anchors")
    return secret


def anchor_main(settings: Settings, day: str | None) -> int:
    chosen_day = day or (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    print(anchor_day(settings, chosen_day, asyncio.run(read_log(settings))))
    return 0


def anchor_day(settings: Settings, chosen_day: str, log: AuditLog) -> str:
    """Sign (and with a Horizon URL, submit) ``chosen_day``'s root, publish the anchor;
    what was done, in one line."""
    secret = _anchor_secret(settings)
    batches = day_batches(log.batches, chosen_day)
    if not batches:
        raise AuditError(f"no audit batch was closed on {chosen_day}")
    anchor = build_anchor(
        chosen_day,
        batches,
        secret,
        settings.stellar_network,
        settings.stellar_sequence,
        datetime.now(UTC),
    )
    if settings.horizon_url:
        anchor = _submit(settings, settings.horizon_url, anchor, batches)
    record = OutRecord(
        Topics(settings.topic_prefix).audit_anchors, anchor.day.encode(), WireCodec().encode(anchor)
    )
    asyncio.run(publish(settings.bootstrap_servers, [record]))
    state = "submitted" if anchor.submitted else "signed, kept for later submission"
    summary = f"root {anchor.root} over {len(batches)} batches, tx {anchor.tx_hash} ({state})"
    return f"anchored {chosen_day}: {summary}"


def next_anchor_at(now: datetime, at: time) -> datetime:
    """The next time the daily anchor is due (``at`` UTC, today or tomorrow).

    >>> next_anchor_at(datetime(2026, 5, 1, 0, 10, tzinfo=UTC), time(0, 30)).isoformat()
    '2026-05-01T00:30:00+00:00'
    >>> next_anchor_at(datetime(2026, 5, 1, 0, 31, tzinfo=UTC), time(0, 30)).isoformat()
    '2026-05-02T00:30:00+00:00'
    """
    today = datetime.combine(now.date(), at, UTC)
    return today if now < today else today + timedelta(days=1)


def anchor_schedule_main(settings: Settings) -> int:
    """``atalaia audit anchor --schedule``: anchor the day before every day at
    ``anchor_time_utc``, until SIGINT/SIGTERM. Started after that time, it anchors yesterday
    at once unless its anchor is already on the anchors topic."""
    from streams.logs import configure_logging
    from streams.ops import Check, Readiness, operated

    _anchor_secret(settings)
    configure_logging(settings, "anchor")
    status = {"next": "", "last": "none yet"}

    async def main() -> None:
        readiness = Readiness("anchor")
        readiness.check("schedule", lambda: Check(True, f"next {status['next']}; {status['last']}"))
        port = settings.metrics_port
        async with operated(readiness, settings.metrics_host, port) as stop:
            await ensure_topics(settings)
            while not stop.is_set():
                now = datetime.now(UTC)
                yesterday = (now - timedelta(days=1)).date().isoformat()
                due_today = datetime.combine(now.date(), settings.anchor_time_utc, UTC)
                if now >= due_today:
                    status["last"] = await _anchor_once(settings, yesterday)
                    _log.info("%s", status["last"])
                due = next_anchor_at(datetime.now(UTC), settings.anchor_time_utc)
                status["next"] = due.isoformat(timespec="minutes")
                _log.info("next anchor at %s (the day before, UTC)", status["next"])
                wait = (due - datetime.now(UTC)).total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(1.0, wait))

    asyncio.run(main())
    return 0


async def _anchor_once(settings: Settings, day: str) -> str:
    log = await read_log(settings)
    if any(anchor.day == day for anchor in log.anchors):
        return f"{day} already anchored"
    try:
        return await asyncio.to_thread(anchor_day, settings, day, log)
    except AuditError as exc:  # nothing to anchor that day: say so, try the next day
        return f"{day} not anchored: {exc}"


def _submit(
    settings: Settings, horizon_url: str, anchor: AuditAnchor, batches: list[AuditBatch]
) -> AuditAnchor:
    """Rebuild on the account's current sequence from Horizon, sign, submit."""
    from stellar_sdk import Keypair, Server

    server = Server(horizon_url)
    secret = settings.stellar_secret.get_secret_value()
    account = server.load_account(Keypair.from_secret(secret).public_key)
    network = settings.stellar_network
    rebuilt = build_anchor(
        anchor.day, batches, secret, network, account.sequence, anchor.created_at
    )
    server.submit_transaction(rebuilt.envelope_xdr)
    return rebuilt.model_copy(update={"submitted": True})


def archive_batches(log: AuditLog, before: str, out_dir: Path) -> list[Path]:
    """Write each batch closed before ``before`` (UTC day) to ``out_dir`` as gzip'd JSON:
    the batch, its records' canonical JSON and each record's inclusion proof, so it can be
    checked without the topics. Returns the files written (existing ones are rewritten)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_sequence = log.by_sequence()
    written = []
    for batch in sorted(log.batches, key=lambda b: (b.chain, b.first_sequence)):
        if batch.closed_at.date().isoformat() >= before:
            continue
        chain = by_sequence.get(batch.chain, {})
        covered = range(batch.first_sequence, batch.last_sequence + 1)
        if any(s not in chain for s in covered):
            raise AuditError(f"batch {batch.batch_id}: records missing, run audit verify")
        texts = [canonical(chain[s]) for s in covered]
        leaves = [leaf_hash(text) for text in texts]
        document = {
            "batch": batch.model_dump(mode="json"),
            "records": [text.decode() for text in texts],
            "proofs": [[h.hex() for h in inclusion_proof(leaves, i)] for i in range(len(leaves))],
        }
        target = (
            out_dir
            / f"audit-batch-{batch.chain}-{batch.first_sequence}-{batch.last_sequence}.json.gz"
        )
        target.write_bytes(gzip.compress(json.dumps(document, ensure_ascii=False).encode()))
        written.append(target)
    return written


def archive_main(settings: Settings, before: str, out_dir: Path) -> int:
    log = asyncio.run(read_log(settings))
    written = archive_batches(log, before, out_dir)
    size = sum(path.stat().st_size for path in written)
    print(f"archived {len(written)} batches closed before {before} to {out_dir} ({size} bytes)")
    return 0
