"""The write-once audit log (pure): chaining records, cutting Merkle batches, verifying both.

Each audit chain (one per partition of the audit topic) has one writer, the auditor. It gives
every record the next ``sequence`` and the SHA-256 of the previous record's canonical JSON,
so a gap, a reorder, a replay or an edit shows before any batch is cut. Records are then
grouped into batches (every ``batch_records`` records, or once the open batch is
``batch_seconds`` old: ``cut_if_due``, at the next record or when the auditor checks a quiet
chain) whose RFC 6962 Merkle root is chained to the previous batch's root.

A record id is written once: the same content again is ignored (at-least-once producers), a
different content under a known id is refused and leaves a conflict record in the chain.

The canonical form is what a third party hashes: JSON with sorted keys, no spaces, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from config.rules import AlertRules
from engine.alerts import AUDIT_CONFLICT, audit_conflict_alert
from engine.merkle import leaf_hash, merkle_root
from schemas.models import (
    ActorType,
    Alert,
    AuditActor,
    AuditBatch,
    AuditCompliance,
    AuditDetails,
    AuditRecord,
    Decision,
)

AUDITOR = "auditor"


def canonical(record: AuditRecord) -> bytes:
    return json.dumps(
        record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def content_hash(record: AuditRecord) -> str:
    """The hash of what a producer wrote (chain fields left out): what write-once compares."""
    unchained = record.model_copy(update={"chain": None, "sequence": None, "previous_hash": None})
    return record_hash(unchained)


@dataclass
class ChainState:
    """One chain's tip and its open batch (leaf hashes in hex)."""

    chain: int
    next_sequence: int = 0
    last_hash: str | None = None
    pending: list[str] = field(default_factory=list)
    batch_opened_ms: int | None = None
    previous_root: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None, chain: int) -> ChainState:
        return cls(**json.loads(data)) if data else cls(chain)


@dataclass
class Appended:
    """What one incoming record produced: chained records (the record, or a conflict
    record), and a batch if one was cut."""

    records: list[AuditRecord] = field(default_factory=list)
    batches: list[AuditBatch] = field(default_factory=list)
    duplicate: bool = False


def append(
    state: ChainState,
    record: AuditRecord,
    known_content: str | None,
    at: datetime,
    batch_records: int,
    batch_seconds: int,
) -> Appended:
    """Chain ``record`` (whose id was last written with ``known_content``, if ever)."""
    content = content_hash(record)
    if known_content == content:
        return Appended(duplicate=True)
    out = Appended()
    due = cut_if_due(state, at, batch_seconds)
    if due is not None:
        out.batches.append(due)
    if known_content is not None:
        record = conflict_record(record, known_content, content)
    chained = record.model_copy(
        update={
            "chain": state.chain,
            "sequence": state.next_sequence,
            "previous_hash": state.last_hash,
        }
    )
    state.next_sequence += 1
    state.last_hash = record_hash(chained)
    state.pending.append(leaf_hash(canonical(chained)).hex())
    if state.batch_opened_ms is None:
        state.batch_opened_ms = int(at.timestamp() * 1000)
    out.records.append(chained)
    if len(state.pending) >= batch_records:
        out.batches.append(_cut(state, at))
    return out


FULL, AGED, QUIET = "full", "age", "quiet chain"
"""Why a batch was cut: it held the most records, it was due at a record, or the timer."""


@dataclass
class AuditStep:
    """What appending one batch of intake records produces, for the auditor to publish and
    store: chained records (each on its chain's partition), batches cut with their causes,
    the alerts of refused second writes, and the ids written for the first time."""

    records: list[AuditRecord] = field(default_factory=list)
    batches: list[tuple[AuditBatch, str]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)
    """Content hash by audit id, for the ids this step wrote first."""
    repeats: int = 0


def append_all(
    chains: dict[int, ChainState],
    entries: Iterable[tuple[int, AuditRecord]],
    known: dict[str, str],
    at: datetime,
    batch_records: int,
    batch_seconds: int,
    alert_rules: AlertRules,
) -> AuditStep:
    """Append each (chain, record) of ``entries`` to its chain's state in ``chains``;
    ``known`` holds the content hash of the ids already written (those the entries name),
    and learns the ones this step writes (an id twice in one step is a repeat or a
    conflict, as across steps)."""
    step = AuditStep()
    for chain, entry in entries:
        out = append(
            chains[chain], entry, known.get(entry.audit_id), at, batch_records, batch_seconds
        )
        if out.duplicate:
            step.repeats += 1
        elif entry.audit_id not in known:
            known[entry.audit_id] = step.written[entry.audit_id] = content_hash(entry)
        step.records += out.records
        step.alerts += [
            audit_conflict_alert(chained, alert_rules, at)
            for chained in out.records
            if chained.action == AUDIT_CONFLICT
        ]
        step.batches += [
            (batch, FULL if batch.count >= batch_records else AGED) for batch in out.batches
        ]
    return step


def cut_if_due(state: ChainState, at: datetime, batch_seconds: int) -> AuditBatch | None:
    """The open batch, cut at ``at`` if it has been open ``batch_seconds`` (else None)."""
    opened = state.batch_opened_ms
    if not state.pending or opened is None:
        return None
    if int(at.timestamp() * 1000) - opened < batch_seconds * 1000:
        return None
    return _cut(state, at)


def _cut(state: ChainState, at: datetime) -> AuditBatch:
    last = state.next_sequence - 1
    first = last - len(state.pending) + 1
    root = merkle_root([bytes.fromhex(leaf) for leaf in state.pending]).hex()
    batch = AuditBatch(
        batch_id=f"{state.chain}:{first}-{last}",
        chain=state.chain,
        first_sequence=first,
        last_sequence=last,
        count=len(state.pending),
        root=root,
        previous_root=state.previous_root,
        closed_at=at,
    )
    state.pending, state.batch_opened_ms, state.previous_root = [], None, root
    return batch


def conflict_record(refused: AuditRecord, known: str, offered: str) -> AuditRecord:
    """What is chained instead of a second, different write of a known id: the evidence."""
    return AuditRecord(
        audit_id=f"conflict-{refused.audit_id}-{offered[:16]}",
        timestamp=refused.timestamp,
        action="audit_conflict",
        actor=AuditActor(type=ActorType.SYSTEM, id=AUDITOR),
        details=AuditDetails(
            reason=f"second write of {refused.audit_id} with different content refused",
            previous_state=json.dumps({"content_sha256": known}),
            new_state=json.dumps({"content_sha256": offered}),
            change_type="none",
        ),
        compliance=refused.compliance,
    )


def decision_record(decision: Decision) -> AuditRecord:
    """A decision's audit record, from the event and the verdict only (not the decision
    time), so a re-decided event writes the same record: a duplicate, not a conflict."""
    state = {
        "verdict": decision.decision.value,
        "score": decision.score,
        "band": decision.band.value,
        "reasons": [[r.code, r.points] for r in decision.reasons],
        "actions": [a.value for a in decision.actions],
        "rule_version": decision.rule_version,
    }
    return AuditRecord(
        audit_id=f"decision-{decision.event_id}",
        timestamp=decision.event_occurred_at,
        action="fraud_detected" if decision.decision.value != "ALLOW" else "decision",
        actor=AuditActor(type=ActorType.SYSTEM, id="engine"),
        details=AuditDetails(
            entity_type=decision.subject_type.value,
            transaction_id=decision.event_id,
            severity=decision.band.value,
            reason=",".join(r.code for r in decision.reasons) or None,
            change_type="create",
            new_state=json.dumps(state, sort_keys=True, separators=(",", ":")),
        ),
        compliance=AuditCompliance(
            regulation="BACEN",
            retention_period="7_years",
            classification="confidential",
            data_subject=decision.user_id,
        ),
    )


@dataclass(frozen=True)
class Problem:
    """One thing verify found wrong: where, and what."""

    chain: int | None
    where: str
    what: str

    def __str__(self) -> str:
        chain = f"chain {self.chain}" if self.chain is not None else "batches"
        return f"{chain}: {self.where}: {self.what}"


def verify_chain(chain: int, records: Sequence[tuple[int, AuditRecord]]) -> list[Problem]:
    """Check one chain read in offset order: sequences from 0 without gap, repeat or
    disorder, each record naming the hash of the one before it."""
    problems: list[Problem] = []
    expected, previous_hash, previous_where, previous_id = 0, None, "", ""
    seen: set[int] = set()
    for offset, record in records:
        where = f"offset {offset} ({record.audit_id}, sequence {record.sequence})"
        if record.chain != chain:
            problems.append(Problem(chain, where, f"belongs to chain {record.chain}"))
        sequence = record.sequence if record.sequence is not None else -1
        if sequence in seen:
            problems.append(Problem(chain, where, "replayed: this sequence was already read"))
            continue
        if sequence > expected:
            missing = f"{expected}" if sequence == expected + 1 else f"{expected}-{sequence - 1}"
            after = f", after {previous_id}" if previous_id else ""
            problems.append(Problem(chain, where, f"sequence {missing} missing before it{after}"))
        elif sequence < expected:
            problems.append(Problem(chain, where, f"out of order: expected {expected}"))
            seen.add(sequence)
            continue  # the chain goes on from the last record read in order
        elif record.previous_hash != previous_hash:
            what = f"altered: the next record ({record.audit_id}) names another hash for it"
            problems.append(Problem(chain, previous_where, what))
        seen.add(sequence)
        expected = max(expected, sequence + 1)
        previous_hash, previous_where, previous_id = record_hash(record), where, record.audit_id
    return problems


def verify_batches(
    records: dict[int, dict[int, AuditRecord]], batches: Iterable[AuditBatch]
) -> list[Problem]:
    """Recompute every batch's root from the records it covers and check the root chain."""
    problems: list[Problem] = []
    previous: dict[int, str | None] = {}
    for batch in sorted(batches, key=lambda b: (b.chain, b.first_sequence)):
        where = f"batch {batch.batch_id}"
        if batch.previous_root != previous.get(batch.chain):
            problems.append(Problem(batch.chain, where, "does not follow the previous batch"))
        previous[batch.chain] = batch.root
        chain = records.get(batch.chain, {})
        covered = range(batch.first_sequence, batch.last_sequence + 1)
        missing = [s for s in covered if s not in chain]
        if missing:
            problems.append(Problem(batch.chain, where, f"records {missing[:5]} missing"))
            continue
        leaves = [leaf_hash(canonical(chain[s])) for s in covered]
        if merkle_root(leaves).hex() != batch.root:
            altered = _altered(chain, batch, leaves)
            problems.append(Problem(batch.chain, where, f"root mismatch{altered}"))
    return problems


def _altered(chain: dict[int, AuditRecord], batch: AuditBatch, leaves: list[bytes]) -> str:
    """Which record of a batch no longer fits its successor's previous_hash, if one does."""
    for sequence in range(batch.first_sequence, batch.last_sequence):
        following = chain.get(sequence + 1)
        if following is not None and following.previous_hash != record_hash(chain[sequence]):
            return f": record sequence {sequence} ({chain[sequence].audit_id}) was altered"
    return f": the last record ({chain[batch.last_sequence].audit_id}) was altered"
