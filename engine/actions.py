"""Automatic actions carried on the decision (pure).

GiftPix "Ações Automáticas": a blocked gift action raises an internal alert, blocks creation
(giver) or redemption (gift) and gets the generic user message; suspicious redemption attempts
require a captcha. Capy Pay login flow: a login under REVIEW flags the user for review.
"""

from __future__ import annotations

from config.rules import GiftActions
from engine.scoring import Assessment
from schemas.models import (
    BlockedEntityType,
    DecisionAction,
    FraudBlock,
    GiftEvent,
    GiftEventType,
    InputEvent,
    LoginEvent,
    Verdict,
)


def actions_for(
    event: InputEvent, assessment: Assessment, blocks: list[FraudBlock], policy: GiftActions
) -> tuple[list[DecisionAction], str | None]:
    """The actions to carry out, and the message to show the user (None: nothing to show)."""
    actions: list[DecisionAction] = []
    message = None
    if isinstance(event, LoginEvent) and assessment.verdict is Verdict.REVIEW:
        actions.append(DecisionAction.FLAG_USER_FOR_REVIEW)
    if not isinstance(event, GiftEvent):
        return actions, message
    fired = {r.code for r in assessment.reasons if r.points > 0}
    if assessment.verdict is Verdict.BLOCK:
        actions.append(DecisionAction.INTERNAL_ALERT)
        message = policy.blocked_message
        for block in blocks:
            actions.append(
                DecisionAction.BLOCK_REDEMPTION
                if block.entity_type is BlockedEntityType.GIFT
                else DecisionAction.BLOCK_GIFT_CREATION
            )
    elif event.event_type is GiftEventType.REDEEM_ATTEMPT and fired & policy.captcha_after:
        actions.append(DecisionAction.CAPTCHA_REQUIRED)
    return actions, message
