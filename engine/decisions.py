"""Building the Decision record, and collapsing re-delivered decisions downstream."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from engine.admission import subject_of, user_of
from engine.model_inputs import ModelScore
from engine.scoring import Assessment
from schemas.models import (
    EVENT_KIND_OF,
    Decision,
    DecisionAction,
    GiftEvent,
    InputEvent,
    LoginEvent,
    TransactionEvent,
    utc_instant,
)


def event_type_of(event: InputEvent) -> str:
    match event:
        case TransactionEvent():
            return event.tx_type.value
        case GiftEvent():
            return event.event_type.value
        case LoginEvent():
            return "LOGIN"
    raise TypeError(f"not an input event: {type(event).__name__}")


def build_decision(
    event: InputEvent,
    assessment: Assessment,
    rule_version: str,
    received_at: datetime,
    decided_at: datetime,
    actions: Sequence[DecisionAction] = (),
    user_message: str | None = None,
    model: tuple[ModelScore, str] | None = None,
    label_entities: Sequence[str] = (),
) -> Decision:
    """The Decision for ``event``; ``received_at`` is the input record's broker timestamp;
    ``model`` the online model's (score, version) when it scored the event.

    Built without validating again what the engine computed from a validated event (typed
    values, the features dict the largest part): only the decision time is normalised, as
    validation would. ``tests/unit/test_decisions.py`` holds every
    decision of the scenario streams to the model's validation."""
    subject = subject_of(event)
    return Decision.model_construct(
        event_id=event.event_id,
        event_kind=EVENT_KIND_OF[type(event)],
        event_type=event_type_of(event),
        subject_type=subject.type,
        subject_id=subject.id,
        user_id=user_of(event),
        score=assessment.score,
        band=assessment.band,
        decision=assessment.verdict,
        reasons=list(assessment.reasons),
        features=assessment.features,
        actions=list(actions),
        user_message=user_message,
        rule_version=rule_version,
        event_occurred_at=event.occurred_at,
        decided_at=utc_instant(decided_at),
        latency_ms=max(0, round((decided_at - received_at).total_seconds() * 1000)),
        model_version=model[1] if model else None,
        model_probability=model[0].probability if model else None,
        model_anomaly=model[0].anomaly if model else None,
        label_entities=list(label_entities),
    )


class Seen(StrEnum):
    FIRST = "first"
    DUPLICATE = "duplicate"  # same event_id, same verdict: safe to drop
    CONFLICT = "conflict"  # same event_id, different verdict: must be investigated


def _verdict_of(decision: Decision) -> tuple[object, ...]:
    return (
        decision.decision,
        decision.score,
        tuple(decision.reasons),
        tuple(sorted(decision.features.items())),
        tuple(decision.actions),
        decision.rule_version,
    )


class DecisionLedger:
    """Downstream dedupe by event_id, bounded to the ``capacity`` most recent ids.

    Delivery is at-least-once, so a decision may arrive twice (after a worker crash, for
    instance). Re-deliveries carry the same verdict; only timing fields differ.

    >>> from datetime import UTC, datetime
    >>> d = Decision(event_id="e1", event_kind="gift", event_type="gift_paid",
    ...     subject_type="user", subject_id="u1", score=0, band="LOW", decision="ALLOW",
    ...     rule_version="1", event_occurred_at=0, decided_at=1, latency_ms=1)
    >>> ledger = DecisionLedger()
    >>> ledger.observe(d), ledger.observe(d.model_copy(update={"latency_ms": 9}))
    (<Seen.FIRST: 'first'>, <Seen.DUPLICATE: 'duplicate'>)
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._verdicts: OrderedDict[str, tuple[object, ...]] = OrderedDict()
        self.duplicates = 0
        self.conflicts = 0

    def observe(self, decision: Decision) -> Seen:
        verdict = _verdict_of(decision)
        known = self._verdicts.get(decision.event_id)
        if known is None:
            self._verdicts[decision.event_id] = verdict
            if len(self._verdicts) > self.capacity:
                self._verdicts.popitem(last=False)
            return Seen.FIRST
        if known == verdict:
            self.duplicates += 1
            return Seen.DUPLICATE
        self.conflicts += 1
        return Seen.CONFLICT

    def __len__(self) -> int:
        return len(self._verdicts)
