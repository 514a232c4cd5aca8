"""Investigation cases: opened by decisions to look at, worked, closed into labels, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.rules import load_rules
from engine.cases import SubjectCases, apply_command, case_command_for
from engine.decide import decide_event
from engine.velocity import VelocityState
from schemas.models import CaseCommand, CaseStatus, Decision, InputEvent, ListSeverity
from tests import factories

RULES = load_rules()
AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _command(n: int, action: str, **fields: object) -> CaseCommand:
    base: dict[str, object] = {
        "command_id": f"c{n}",
        "subject_type": "user",
        "subject_id": "u1",
        "action": action,
        "actor": "analyst-key" if action != "link_decision" else "engine",
        "actor_type": "analyst" if action != "link_decision" else "system",
        "at": AT + timedelta(minutes=n),
    }
    return CaseCommand.model_validate({**base, **fields})


def _link(n: int, priority: str = "MEDIUM", codes: tuple[str, ...] = ("X",)) -> CaseCommand:
    return _command(n, "link_decision", event_id=f"e{n}", priority=priority, reason_codes=codes)


def _decision(
    event: InputEvent, lists: dict[str, int] | None = None
) -> tuple[Decision, ListSeverity | None]:
    outcome = decide_event(VelocityState(), event, RULES, lists=lists)
    return factories.decision_of(event, outcome, AT), outcome.assessment.list_severity


def test_decisions_link_to_one_open_case_which_keeps_the_highest_priority() -> None:
    state = SubjectCases()
    first = apply_command(state, _link(1, "MEDIUM", ("A",))).cases[0]
    second = apply_command(state, _link(2, "CRITICAL", ("B", "A"))).cases[0]
    third = apply_command(state, _link(3, "LOW", ("C",))).cases[0]
    assert first.case_id == second.case_id == third.case_id == "case:user:u1:1"
    assert (third.priority.value, third.version) == ("CRITICAL", 3)
    assert third.event_ids == ["e1", "e2", "e3"] and third.reason_codes == ["A", "B", "C"]


def test_a_redelivered_command_changes_nothing() -> None:
    state = SubjectCases()
    apply_command(state, _link(1))
    again = apply_command(state, _link(1))
    assert again.cases == [] and again.refused is None
    assert state.current is not None and state.current.version == 1


def test_analysts_update_note_and_close_into_a_label_then_a_new_case_opens() -> None:
    state = SubjectCases()
    case_id = apply_command(state, _link(1)).cases[0].case_id
    updated = apply_command(
        state, _command(2, "update", case_id=case_id, status="investigating", assignee="ana")
    ).cases[0]
    assert (updated.status, updated.assignee) == (CaseStatus.INVESTIGATING, "ana")
    noted = apply_command(state, _command(3, "note", case_id=case_id, note="called the user"))
    assert [n.text for n in noted.cases[0].notes] == ["called the user"]
    closed = apply_command(state, _command(4, "close", case_id=case_id, outcome="fraud_confirmed"))
    assert (
        closed.cases[0].status is CaseStatus.CLOSED and closed.cases[0].closed_by == "analyst-key"
    )
    assert closed.label is not None
    assert (closed.label.is_fraud, closed.label.event_ids) == (True, ["e1"])
    late_note = apply_command(state, _command(5, "note", case_id=case_id, note="too late"))
    assert late_note.refused == "the case is closed"
    reopened = apply_command(state, _link(6)).cases[0]
    assert reopened.case_id == "case:user:u1:2" and reopened.event_ids == ["e6"]
    copy = SubjectCases.from_bytes(state.to_bytes())
    assert copy.current == state.current and copy.closed == state.closed


def test_closing_needs_an_outcome_not_a_status() -> None:
    state = SubjectCases()
    case_id = apply_command(state, _link(1)).cases[0].case_id
    refused = apply_command(state, _command(2, "update", case_id=case_id, status="closed"))
    assert refused.refused is not None and "outcome" in refused.refused
    assert state.current is not None and state.current.status is CaseStatus.OPEN


def test_review_decisions_and_severe_list_hits_open_cases_others_do_not() -> None:
    review, severity = _decision(
        factories.login(success=True, network_flags=[]), {"list.block.user.HIGH": 1}
    )
    command = case_command_for(review, severity, RULES.cases)
    assert command is not None and command.priority is not None
    assert (command.command_id, command.priority.value) == (f"decision:{review.event_id}", "HIGH")
    plain, severity = _decision(factories.transaction(network_flags=[]))
    assert case_command_for(plain, severity, RULES.cases) is None


def test_a_sealed_note_is_kept_sealed_and_an_older_clear_one_still_reads() -> None:
    from engine.sealing import new_subject_key, open_note, seal_note

    state = SubjectCases()
    case_id = apply_command(state, _command(1, "link_decision", event_id="e1")).cases[0].case_id
    key = new_subject_key()
    sealed = seal_note(key, "ligou Maria, 11 98765-4321", "u1")
    noted = apply_command(
        state,
        _command(2, "note", case_id=case_id, note_sealed=sealed.sealed, note_digest=sealed.digest),
    ).cases[0]
    (note,) = noted.notes
    assert note.text is None and "98765" not in noted.model_dump_json()
    assert open_note(key, note.sealed or "", "u1") == "ligou Maria, 11 98765-4321"
    assert open_note(new_subject_key(), note.sealed or "", "u1") is None  # erased: unreadable
    older = apply_command(state, _command(3, "note", case_id=case_id, note="old clear note"))
    assert older.cases[0].notes[-1].text == "old clear note"
