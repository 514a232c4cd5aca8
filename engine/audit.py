"""Audit records for admin calls and list changes, in the seed's structure (pure).

Values appear only masked or hashed: a list entry's state is its ``ListEntry`` record, which
holds the keyed hash and the mask, never the value. Free text typed by people (reasons, a
user agent) is kept with the personal data found in it masked (``engine.masking.mask_text``);
case notes are sealed under their subject's key before they get here.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from engine.lists import WHITELIST_OVERRIDE
from engine.masking import mask_ip, mask_text
from schemas.models import (
    AccountState,
    ActorType,
    AuditActor,
    AuditCompliance,
    AuditDetails,
    AuditRecord,
    Case,
    CaseCommand,
    CaseStatus,
    Decision,
    ListEntry,
    ListSource,
)

RETENTION = "7_years"
ENGINE = "engine"
"""Actor id of what the engine does by itself."""
CLASSIFICATION = "confidential"
UNAUTHENTICATED = "unauthenticated"


def _compliance(regulation: str, data_subject: str | None = None) -> AuditCompliance:
    return AuditCompliance(
        regulation=regulation,
        retention_period=RETENTION,
        classification=CLASSIFICATION,
        data_subject=data_subject,
    )


def _regulation(source: ListSource) -> str:
    return {ListSource.OFAC: "OFAC", ListSource.BACEN: "BACEN"}.get(source, "BACEN")


def call_record(
    actor: AuditActor, request: str, at: datetime, correlation_id: str | None = None
) -> AuditRecord:
    """One admin API call or CLI command: who, what (method, route template, status)."""
    return AuditRecord(
        audit_id=f"call-{uuid.uuid4().hex}",
        timestamp=at,
        action="admin_call",
        actor=actor,
        details=AuditDetails(change_type="read", request=request, correlation_id=correlation_id),
        compliance=_compliance("LGPD"),
    )


def list_change_record(
    actor: AuditActor,
    previous: ListEntry | None,
    new: ListEntry,
    at: datetime,
    correlation_id: str | None = None,
    audit_id: str | None = None,
) -> AuditRecord:
    """An entry added (``previous`` None or removed), updated, or removed; ``audit_id``
    when the change must write the same record again (the engine's, re-decided)."""
    if new.removed_at is not None:
        action, change = "blacklist_remove", "delete"
    elif previous is None or previous.removed_at is not None:
        action, change = "blacklist_add", "create"
    else:
        action, change = "blacklist_update", "update"
    return AuditRecord(
        audit_id=audit_id or f"list-{uuid.uuid4().hex}",
        timestamp=at,
        action=action,
        actor=actor,
        details=AuditDetails(
            entity_type=new.entity_type.value,
            entity_value_masked=new.masked_value,
            reason=new.reason,
            severity=new.severity.value,
            source=new.source.value,
            correlation_id=correlation_id,
            change_type=change,
            previous_state=previous.model_dump_json() if previous is not None else None,
            new_state=new.model_dump_json(),
        ),
        compliance=_compliance(_regulation(new.source)),
    )


def link_record(link: ListEntry, event_id: str) -> AuditRecord:
    """A user listed by the engine for carrying a listed identity on ``event_id``
    (``engine.lists.links_for``); the id comes from the event and the entry, so a
    re-decided event writes the same record."""
    actor = AuditActor(type=ActorType.SYSTEM, id=ENGINE)
    origin = (link.linked_from or link.entry_id).rsplit(":", 1)[-1]
    audit_id = f"link-{event_id}-{origin[:16]}"
    return list_change_record(actor, None, link, link.created_at, event_id, audit_id)


def account_state_record(
    actor: AuditActor | None, previous: AccountState | None, new: AccountState
) -> AuditRecord:
    """An account frozen or unfrozen: by the engine (``actor`` None; the id comes from the
    freezing event, so a re-decided event writes the same record) or by an analyst."""
    action = "account_freeze" if new.frozen else "account_unfreeze"
    engine = actor is None
    return AuditRecord(
        audit_id=f"freeze-{new.event_id}" if engine else f"account-{uuid.uuid4().hex}",
        timestamp=new.changed_at,
        action=action,
        actor=AuditActor(type=ActorType.SYSTEM, id=ENGINE) if actor is None else actor,
        details=AuditDetails(
            entity_type="user",
            reason=new.reason,
            transaction_id=new.event_id,
            change_type="update" if previous is not None else "create",
            previous_state=previous.model_dump_json() if previous is not None else None,
            new_state=new.model_dump_json(),
        ),
        compliance=_compliance("BACEN", data_subject=new.user_id),
    )


def feed_refresh_record(
    actor: AuditActor,
    feed: str,
    kind: str,
    source: ListSource,
    counts: dict[str, int],
    failure: str | None,
    at: datetime,
    correlation_id: str,
) -> AuditRecord:
    """One run of a list feed: what it added and removed (each change has its own
    ``blacklist_*`` record under the same correlation id), or why it changed nothing."""
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    return AuditRecord(
        audit_id=f"feed-{uuid.uuid4().hex}",
        timestamp=at,
        action="feed_refresh_failed" if failure else "feed_refresh",
        actor=actor,
        details=AuditDetails(
            entity_type=kind,
            reason=f"feed {feed}: {failure or summary}"[:512],
            source=source.value,
            correlation_id=correlation_id,
            change_type="none" if failure else "update",
            new_state=json.dumps({"feed": feed, **counts}, sort_keys=True),
        ),
        compliance=_compliance(_regulation(source)),
    )


def actor_of(
    name: str | None, role: str | None, ip: str | None, user_agent: str | None
) -> AuditActor:
    """The actor of an API call; an unauthenticated caller is recorded as such."""
    return AuditActor(
        type=ActorType(role) if role else ActorType.USER,
        id=name or UNAUTHENTICATED,
        ip_masked=mask_ip(ip) if ip else None,
        user_agent=mask_text(user_agent[:200]) if user_agent else None,
    )


def case_record(
    command: CaseCommand, previous: Case | None, new: Case | None, refused: str | None
) -> AuditRecord:
    """A case change (or a refused change), under an id derived from the command, so a
    re-applied command writes the same record again, not a second one."""
    if refused is not None:
        action, change = "case_command_refused", "none"
    elif previous is None:
        action, change = "case_created", "create"
    elif new is not None and new.status is CaseStatus.CLOSED:
        action, change = "case_closed", "update"
    else:
        action, change = "case_updated", "update"
    return AuditRecord(
        audit_id=f"case-{command.command_id}",
        timestamp=command.at,
        action=action,
        actor=AuditActor(type=command.actor_type, id=command.actor),
        details=AuditDetails(
            entity_type=command.subject_type.value,
            reason=refused or command.action.value,
            transaction_id=command.event_id,
            case_id=(new.case_id if new is not None else command.case_id),
            change_type=change,
            previous_state=previous.model_dump_json() if previous is not None else None,
            new_state=new.model_dump_json() if new is not None else None,
        ),
        compliance=_compliance("BACEN", data_subject=command.subject_id),
    )


def override_record(decision: Decision) -> AuditRecord | None:
    """The audit record of an allow-list overriding block-list hits on ``decision`` (the seed:
    "whitelist override ... auditRequired"), None when there was no override. Built from the
    event, not the clock, so a re-decided event gives the very same record."""
    override = next((r for r in decision.reasons if r.code == WHITELIST_OVERRIDE), None)
    if override is None:
        return None
    return AuditRecord(
        audit_id=f"override-{decision.event_id}",
        timestamp=decision.event_occurred_at,
        action="whitelist_override",
        actor=AuditActor(type=ActorType.SYSTEM, id=ENGINE),
        details=AuditDetails(
            entity_type=decision.subject_type.value,
            reason=override.detail,
            transaction_id=decision.event_id,
            change_type="none",
        ),
        compliance=_compliance("BACEN", data_subject=decision.user_id),
    )


def evidence_record(
    audit_id: str,
    actor: AuditActor,
    subject_id: str,
    case_id: str | None,
    reason: str,
    masked: dict[str, str],
    sealed: str,
    at: datetime,
) -> AuditRecord:
    """Personal data kept for an investigation: masked in the clear part, whole only sealed
    under the subject's key (``engine.sealing``)."""
    return AuditRecord(
        audit_id=audit_id,
        timestamp=at,
        action="pii_evidence",
        actor=actor,
        details=AuditDetails(
            entity_type="user",
            entity_value_masked=json.dumps(masked, sort_keys=True, ensure_ascii=False),
            reason=mask_text(reason),
            case_id=case_id,
            change_type="create",
        ),
        compliance=_compliance("LGPD", data_subject=subject_id),
        sealed_pii=sealed,
    )


def erasure_record(
    actor: AuditActor, subject_id: str, destroyed: bool, at: datetime
) -> AuditRecord:
    """An LGPD erasure: the subject's key destroyed (crypto-shredding)."""
    return AuditRecord(
        audit_id=f"erasure-{uuid.uuid4().hex}",
        timestamp=at,
        action="lgpd_erasure",
        actor=actor,
        details=AuditDetails(
            entity_type="user",
            reason="subject key destroyed" if destroyed else "no subject key held",
            change_type="delete",
        ),
        compliance=_compliance("LGPD", data_subject=subject_id),
    )


def config_change_record(
    actor_id: str, previous: str | None, new: str, at: datetime
) -> AuditRecord:
    """A rules version pushed to the config topic (what changed is the TOML itself, kept on
    that topic; the record names the versions)."""
    return AuditRecord(
        audit_id=f"config-{uuid.uuid4().hex}",
        timestamp=at,
        action="config_change",
        actor=AuditActor(type=ActorType.ADMIN, id=actor_id),
        details=AuditDetails(
            entity_type="rules",
            reason=f"rules version {new} pushed",
            change_type="update",
            previous_state=json.dumps({"version": previous}) if previous else None,
            new_state=json.dumps({"version": new}),
        ),
        compliance=_compliance("BACEN"),
    )
