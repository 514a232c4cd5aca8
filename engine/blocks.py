"""GiftPix automatic actions: which fraud blocks a decision places (pure).

A blocked gift action blocks its subject: the giver for giver-side steps ("block creation of
new GiftPix"), the gift for redemption steps ("block redemption temporarily"). Expiry is
counted from the event's time, so a re-delivered event places exactly the same block.
"""

from __future__ import annotations

from datetime import timedelta

from config.rules import GiftBlocks
from engine.admission import subject_of
from engine.scoring import Assessment
from schemas.models import (
    BlockedEntityType,
    FraudBlock,
    FraudEvent,
    GiftEvent,
    InputEvent,
    SubjectType,
    Verdict,
)

# A block caused only by an earlier block must not extend itself forever.
# Causes that stop the action without blocking its subject: a block already in force, a shared
# entity under a block, a list hit (the list itself blocks while the entry lasts), and a
# refund refused by the policy (gift redeemed, or not created by this giver within the
# refund window).
_NOT_A_NEW_CAUSE = frozenset(
    {
        "GIFT_SUBJECT_BLOCKED",
        "BLACKLIST_LIST_HIT",
        "GIFT_ENTITY_BLOCKED",
        "GIFT_REFUND_AFTER_REDEMPTION",
        "GIFT_REFUND_OUTSIDE_POLICY",
    }
)


def blocks_for(event: InputEvent, assessment: Assessment, policy: GiftBlocks) -> list[FraudBlock]:
    if not isinstance(event, GiftEvent) or assessment.verdict is not Verdict.BLOCK:
        return []
    causes = [r.code for r in assessment.reasons if r.points > 0 and r.code not in _NOT_A_NEW_CAUSE]
    if not causes:
        return []
    subject = subject_of(event)
    seconds = (
        policy.redemption_block_seconds
        if subject.type is SubjectType.GIFT
        else policy.giver_block_seconds
    )
    return [
        FraudBlock(
            entity_type=BlockedEntityType(subject.type.value),
            entity_id=subject.id,
            reason=causes[0],
            event_id=event.event_id,
            created_at=event.occurred_at,
            expires_at=event.occurred_at + timedelta(seconds=seconds),
        )
    ]


def fraud_event_of(event: InputEvent, assessment: Assessment) -> FraudEvent | None:
    """The seed's fraud_events row for a scored gift action (no IP in clear)."""
    if not isinstance(event, GiftEvent):
        return None
    return FraudEvent(
        event_id=event.event_id,
        user_id=event.giver_user_id,
        gift_id=event.gift_id,
        event_type=event.event_type.value,
        risk_score=assessment.score,
        decision=assessment.verdict,
        reason_codes=[r.code for r in assessment.reasons],
        network_flags=[f.value for f in event.network_flags],
        created_at=event.occurred_at,
    )
