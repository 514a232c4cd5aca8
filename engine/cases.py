"""Investigation cases of one subject (pure): what each command does to them.

A subject has at most one case not closed. A decision to look at (REVIEW, or a HIGH/CRITICAL
list hit) links to it, opening one when there is none; analysts update it, add notes and close
it with an outcome, which becomes a label for learning. Commands are applied once each (a
re-delivered one changes nothing), so the case agent can be at-least-once.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 11, 1, tzinfo=UTC)
>>> state = SubjectCases()
>>> link = CaseCommand(command_id="decision:e1", subject_type="user", subject_id="u1",
...     action="link_decision", actor="engine", actor_type="system", at=at, event_id="e1",
...     priority="HIGH")
>>> [case.case_id for case in apply_command(state, link).cases]
['case:user:u1:1']
>>> apply_command(state, link).cases  # re-delivered: nothing changes
[]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from config.rules import CaseRules
from engine.audit import ENGINE
from schemas.models import (
    ActorType,
    Case,
    CaseAction,
    CaseCommand,
    CaseNote,
    CaseOutcome,
    CasePriority,
    CaseStatus,
    Decision,
    Label,
    ListSeverity,
)

REMEMBERED_COMMANDS = 2000
"""How many recent command ids a subject's state keeps to recognise re-deliveries."""
MAX_LINKED_EVENTS = 500
"""Events kept on one case (the oldest are dropped from the case, not from the topics)."""
_PRIORITIES = list(CasePriority)


@dataclass
class Applied:
    """What a command produced: changed cases to publish, a label, or why it was refused."""

    cases: list[Case] = field(default_factory=list)
    label: Label | None = None
    refused: str | None = None


@dataclass
class SubjectCases:
    """One subject's cases: how many were opened, the one not closed, commands seen."""

    opened: int = 0
    current: Case | None = None
    closed: dict[str, Case] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "n": self.opened,
                "c": self.current.model_dump(mode="json") if self.current else None,
                "x": {k: v.model_dump(mode="json") for k, v in self.closed.items()},
                "s": self.seen,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> SubjectCases:
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(
            opened=raw["n"],
            current=Case.model_validate(raw["c"]) if raw["c"] else None,
            closed={k: Case.model_validate(v) for k, v in raw["x"].items()},
            seen=list(raw["s"]),
        )


def case_command_for(
    decision: Decision, list_severity: ListSeverity | None, rules: CaseRules
) -> CaseCommand | None:
    """The command linking ``decision`` to its subject's case, if it is one to look at."""
    listed = list_severity is not None and list_severity in rules.open_on_list_severities
    if decision.decision not in rules.open_on_verdicts and not listed:
        return None
    priority = CasePriority(decision.band.value)
    if listed and list_severity is not None:
        priority = max(priority, CasePriority(list_severity.value), key=_PRIORITIES.index)
    return CaseCommand(
        command_id=f"decision:{decision.event_id}",
        subject_type=decision.subject_type,
        subject_id=decision.subject_id,
        action=CaseAction.LINK_DECISION,
        actor=ENGINE,
        actor_type=ActorType.SYSTEM,
        at=decision.decided_at,
        event_id=decision.event_id,
        priority=priority,
        reason_codes=[r.code for r in decision.reasons if r.points > 0],
    )


def apply_command(state: SubjectCases, command: CaseCommand) -> Applied:
    if command.command_id in state.seen:
        return Applied()
    state.seen = [*state.seen, command.command_id][-REMEMBERED_COMMANDS:]
    if command.action is CaseAction.LINK_DECISION:
        return Applied(cases=[_link(state, command)])
    case = state.current
    if case is None or case.case_id != command.case_id:
        closed = command.case_id in state.closed
        return Applied(refused="the case is closed" if closed else "no such open case")
    if command.action is CaseAction.UPDATE:
        changes = {
            "status": command.status or case.status,
            "priority": command.priority or case.priority,
            "assignee": command.assignee or case.assignee,
        }
        if command.status is CaseStatus.CLOSED:
            return Applied(refused="close a case with its outcome (POST .../close)")
        updated = _changed(case, command, **changes)
    elif command.action is CaseAction.NOTE and (command.note_sealed or command.note):
        note = CaseNote(
            at=command.at,
            author=command.actor,
            text=None if command.note_sealed else command.note,
            sealed=command.note_sealed,
            digest=command.note_digest,
        )
        updated = _changed(case, command, notes=[*case.notes, note])
    elif command.action is CaseAction.CLOSE and command.outcome is not None:
        updated = _changed(
            case,
            command,
            status=CaseStatus.CLOSED,
            closed_at=command.at,
            closed_by=command.actor,
            outcome=command.outcome,
        )
        state.current = None
        state.closed[updated.case_id] = updated
        label = Label(
            label_id=updated.case_id,
            subject_type=updated.subject_type,
            subject_id=updated.subject_id,
            is_fraud=command.outcome is CaseOutcome.FRAUD_CONFIRMED,
            event_ids=updated.event_ids,
            labelled_at=command.at,
            source="case",
        )
        return Applied(cases=[updated], label=label)
    else:
        return Applied(refused=f"{command.action.value} needs its field")
    state.current = updated
    return Applied(cases=[updated])


def _link(state: SubjectCases, command: CaseCommand) -> Case:
    priority = command.priority or CasePriority.MEDIUM
    case = state.current
    if case is None:
        state.opened += 1
        case = Case(
            case_id=f"case:{command.subject_type.value}:{command.subject_id}:{state.opened}",
            subject_type=command.subject_type,
            subject_id=command.subject_id,
            status=CaseStatus.OPEN,
            priority=priority,
            event_ids=[command.event_id] if command.event_id else [],
            reason_codes=list(dict.fromkeys(command.reason_codes)),
            opened_at=command.at,
            updated_at=command.at,
            version=1,
        )
    else:
        events = [*case.event_ids, *([command.event_id] if command.event_id else [])]
        case = _changed(
            case,
            command,
            priority=max(case.priority, priority, key=_PRIORITIES.index),
            event_ids=events[-MAX_LINKED_EVENTS:],
            reason_codes=list(dict.fromkeys([*case.reason_codes, *command.reason_codes])),
        )
    state.current = case
    return case


def _changed(case: Case, command: CaseCommand, **changes: object) -> Case:
    return case.model_copy(
        update={**changes, "updated_at": command.at, "version": case.version + 1}
    )
