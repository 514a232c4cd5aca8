"""Event factories shared by unit and integration tests."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from config.rules import RuleSet, load_rules, seed_rules_path
from engine.admission import subject_of
from engine.decide import Outcome, decide_event
from engine.decisions import build_decision
from engine.scoring import Assessment
from engine.velocity import VelocityState
from schemas.models import (
    AuditRecord,
    Decision,
    GiftEvent,
    InputEvent,
    LoginEvent,
    TransactionEvent,
)

_counter = itertools.count()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def transaction(**overrides: Any) -> TransactionEvent:
    n = next(_counter)
    fields: dict[str, Any] = {
        "event_id": f"tx-{n}",
        "occurred_at": NOW - timedelta(minutes=1),
        "tx_type": "PIX_TRANSFER",
        "channel": "MOBILE_APP",
        "user_id": f"user-{n % 7}",
        "account_id": "acc-1",
        "amount_cents": 12_345,
        "currency": "BRL",
        "counterparty_pix_key_hash": sha("pix"),
        "device_id": "dev-1",
        "ip": "203.0.113.7",
        "country": "BR",
        "lat": -23.55,
        "lon": -46.63,
        "network_flags": ["VPN"],
        "email_hash": sha("a@b.c"),
        "phone_hash": sha("+5511999999999"),
    }
    merged = {**fields, **overrides}
    # One CPF per user, as upstream: a document shared by users is a fraud signal.
    merged.setdefault("document_hash", sha(f"cpf-{merged['user_id']}"))
    return TransactionEvent.model_validate(merged)


def login(**overrides: Any) -> LoginEvent:
    n = next(_counter)
    fields: dict[str, Any] = {
        "event_id": f"login-{n}",
        "occurred_at": NOW - timedelta(minutes=1),
        "user_id": f"user-{n % 7}",
        "success": False,
        "method": "PASSWORD",
        "failure_reason": "BAD_PASSWORD",
        "ip": "2001:db8::1",
        "device_fingerprint": "fp-1",
        "user_agent": "Mozilla/5.0",
        "country": "BR",
        "email_hash": sha("a@b.c"),
    }
    return LoginEvent.model_validate({**fields, **overrides})


def gift(**overrides: Any) -> GiftEvent:
    n = next(_counter)
    fields: dict[str, Any] = {
        "event_id": f"gift-{n}",
        "occurred_at": NOW - timedelta(minutes=1),
        "event_type": "gift_created",
        "gift_id": f"g-{n}",
        "giver_user_id": f"giver-{n % 5}",
        "recipient_key_hash": sha("pix-recipient"),
        "amount_cents": 50_000,
        "ip": "198.51.100.4",
        "device_id": "dev-9",
        "country": "BR",
    }
    return GiftEvent.model_validate({**fields, **overrides})


def redemption(gift_id: str, correct: bool, **overrides: Any) -> GiftEvent:
    """A redemption attempt on ``gift_id``: a code entered, right or wrong (no amount)."""
    fields = {"event_type": "redeem_attempt", "amount_cents": None, "code_correct": correct}
    return gift(gift_id=gift_id, **{**fields, **overrides})


def audit_record(audit_id: str, **overrides: Any) -> AuditRecord:
    """An admin call's audit record, as producers put on the audit intake."""
    fields: dict[str, Any] = {
        "audit_id": audit_id,
        "timestamp": datetime.now(UTC),
        "action": "admin_call",
        "actor": {"type": "admin", "id": "admin-key"},
        "details": {"request": "GET /api/admin/cases 200"},
        "compliance": {
            "regulation": "LGPD",
            "retention_period": "7_years",
            "classification": "confidential",
        },
    }
    return AuditRecord.model_validate(fields | overrides)


SEED_RULES = load_rules(seed_rules_path())
"""The seed profile: the seeds' rules as written, what most scoring tests check."""


def decide_all(events: list[InputEvent], rules: RuleSet = SEED_RULES) -> list[Assessment]:
    """Score a stream in order (the seed profile's rules by default), each subject with its
    own state."""
    return [outcome.assessment for outcome in run_all(events, rules)]


def run_all(events: list[InputEvent], rules: RuleSet = SEED_RULES) -> list[Outcome]:
    """Like the scoring agent: each subject with its own state, automatic actions applied."""
    states: dict[str, VelocityState] = defaultdict(VelocityState)
    return [decide_event(states[subject_of(event).key], event, rules) for event in events]


def decide(event: InputEvent, rules: RuleSet = SEED_RULES) -> Assessment:
    return decide_all([event], rules)[0]


def decision_of(event: InputEvent, outcome: Outcome, at: datetime, **extra: Any) -> Decision:
    """The decision the scoring agent publishes for ``outcome``, received and decided at
    ``at`` (``extra``: the model's score, label entities)."""
    return build_decision(
        event,
        outcome.assessment,
        rule_version=load_rules().version,
        received_at=at,
        decided_at=at,
        actions=outcome.actions,
        user_message=outcome.user_message,
        **extra,
    )
