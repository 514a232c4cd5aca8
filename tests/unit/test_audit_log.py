"""The audit log core: chaining, write-once, batches, and verify naming exactly what was
tampered with."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from config.rules import load_rules
from engine.audit_log import (
    AGED,
    FULL,
    ChainState,
    append,
    append_all,
    canonical,
    content_hash,
    cut_if_due,
    record_hash,
    verify_batches,
    verify_chain,
)
from engine.merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion
from schemas.models import (
    ActorType,
    AuditActor,
    AuditBatch,
    AuditCompliance,
    AuditDetails,
    AuditRecord,
)

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _record(n: int, reason: str = "r") -> AuditRecord:
    return AuditRecord(
        audit_id=f"a{n}",
        timestamp=AT + timedelta(seconds=n),
        action="admin_call",
        actor=AuditActor(type=ActorType.ADMIN, id="admin-key"),
        details=AuditDetails(reason=reason),
        compliance=AuditCompliance(
            regulation="LGPD", retention_period="7_years", classification="confidential"
        ),
    )


def _log(count: int, batch_records: int = 4) -> tuple[list[AuditRecord], list[AuditBatch]]:
    state = ChainState(chain=0)
    records: list[AuditRecord] = []
    batches: list[AuditBatch] = []
    for n in range(count):
        out = append(state, _record(n), None, AT + timedelta(seconds=n), batch_records, 3600)
        records += out.records
        batches += out.batches
    return records, batches


def _offsets(records: list[AuditRecord]) -> list[tuple[int, AuditRecord]]:
    return list(enumerate(records))


def test_records_are_chained_and_batched_every_n() -> None:
    records, batches = _log(10)
    assert [r.sequence for r in records] == list(range(10))
    assert records[0].previous_hash is None
    assert all(b.previous_hash == record_hash(a) for a, b in itertools.pairwise(records))
    assert [b.batch_id for b in batches] == ["0:0-3", "0:4-7"]
    assert batches[1].previous_root == batches[0].root
    leaves = [leaf_hash(canonical(r)) for r in records[4:8]]
    assert batches[1].root == merkle_root(leaves).hex()
    proof = inclusion_proof(leaves, 2)
    assert verify_inclusion(leaves[2], 2, 4, proof, bytes.fromhex(batches[1].root))
    assert verify_chain(0, _offsets(records)) == []
    assert verify_batches({0: {r.sequence or 0: r for r in records}}, batches) == []


def test_a_batch_is_also_cut_by_time() -> None:
    state = ChainState(chain=3)
    first = append(state, _record(1), None, AT, 1000, 60)
    later = append(state, _record(2), None, AT + timedelta(seconds=61), 1000, 60)
    assert first.batches == [] and [b.batch_id for b in later.batches] == ["3:0-0"]


def test_a_quiet_chain_is_cut_once_its_batch_is_due_and_only_then() -> None:
    state = ChainState(chain=2)
    assert cut_if_due(state, AT + timedelta(days=1), 60) is None  # nothing open
    records = [append(state, _record(n), None, AT, 1000, 60).records[0] for n in range(3)]
    assert cut_if_due(state, AT + timedelta(seconds=59), 60) is None
    batch = cut_if_due(state, AT + timedelta(seconds=60), 60)
    assert batch is not None and batch.batch_id == "2:0-2" and batch.count == 3
    assert batch.root == merkle_root([leaf_hash(canonical(r)) for r in records]).hex()
    assert state.pending == [] and cut_if_due(state, AT + timedelta(days=1), 60) is None
    after = append(state, _record(3), None, AT + timedelta(seconds=61), 1000, 60)
    assert after.batches == [] and after.records[0].sequence == 3
    later = cut_if_due(state, AT + timedelta(seconds=121), 60)
    assert later is not None and later.previous_root == batch.root
    assert (
        verify_batches(
            {2: {r.sequence or 0: r for r in [*records, *after.records]}}, [batch, later]
        )
        == []
    )


def test_same_content_again_is_ignored_different_content_is_refused_with_evidence() -> None:
    state = ChainState(chain=0)
    record = _record(1)
    append(state, record, None, AT, 100, 3600)
    again = append(state, record, content_hash(record), AT, 100, 3600)
    assert again.duplicate and again.records == [] and state.next_sequence == 1
    edited = _record(1, reason="rewritten")
    refused = append(state, edited, content_hash(record), AT, 100, 3600)
    (conflict,) = refused.records
    assert conflict.action == "audit_conflict" and conflict.sequence == 1
    assert conflict.details.reason is not None and "a1" in conflict.details.reason


def test_one_step_over_two_chains_repeats_and_refuses_within_the_step_too() -> None:
    """What the auditor gets back for a batch: an id twice in the same batch is a repeat
    (same content) or a conflict (other content), as it is across batches."""
    first, edited, other = _record(1), _record(1, reason="rewritten"), _record(2)
    known = {"a9": content_hash(_record(9))}  # written by an earlier batch
    chains = {0: ChainState(chain=0), 1: ChainState(chain=1)}
    entries = [(0, first), (0, first), (1, other), (0, edited), (1, _record(9, reason="x"))]
    step = append_all(chains, entries, known, AT, 2, 3600, load_rules().alerts)
    assert [(r.chain, r.sequence, r.action) for r in step.records] == [
        (0, 0, "admin_call"),
        (1, 0, "admin_call"),
        (0, 1, "audit_conflict"),
        (1, 1, "audit_conflict"),
    ]
    assert step.repeats == 1
    assert step.written == {"a1": content_hash(first), "a2": content_hash(other)}
    assert [alert.rule for alert in step.alerts] == ["audit_conflict"] * 2
    assert [(batch.chain, cause) for batch, cause in step.batches] == [(0, FULL), (1, FULL)]
    quiet, rules = {0: ChainState(chain=0)}, load_rules().alerts
    append_all(quiet, [(0, _record(3))], {}, AT, 10, 3600, rules)
    later = AT + timedelta(hours=2)
    (aged,) = append_all(quiet, [(0, _record(4))], {}, later, 10, 3600, rules).batches
    assert (aged[0].count, aged[1]) == (1, AGED)


def test_verify_names_an_edited_record() -> None:
    records, batches = _log(8)
    tampered = list(records)
    tampered[5] = records[5].model_copy(update={"details": AuditDetails(reason="edited")})
    (problem,) = verify_chain(0, _offsets(tampered))
    assert "offset 5 (a5, sequence 5)" in str(problem) and "altered" in str(problem)
    by_sequence = {r.sequence or 0: r for r in tampered}
    (batch_problem,) = verify_batches({0: by_sequence}, batches)
    assert "batch 0:4-7" in str(batch_problem) and "a5" in str(batch_problem)


def test_verify_names_a_deleted_a_moved_and_a_replayed_record() -> None:
    records, _ = _log(8)
    deleted = records[:3] + records[4:]
    (gap,) = verify_chain(0, _offsets(deleted))
    assert "sequence 3 missing" in str(gap) and "a4" in str(gap)
    moved = [*records[:2], records[3], records[2], *records[4:]]
    problems = [str(p) for p in verify_chain(0, _offsets(moved))]
    assert any("a3" in p and "sequence 2 missing" in p for p in problems)
    assert any("a2" in p and "out of order" in p for p in problems)
    replayed = [*records, records[6]]
    (replay,) = verify_chain(0, _offsets(replayed))
    assert "offset 8 (a6, sequence 6)" in str(replay) and "replayed" in str(replay)
