"""Automatic actions carried on the decision (pure).

GiftPix "Ações Automáticas": a blocked gift action raises an internal alert, blocks creation
(giver) or redemption (gift) and gets the generic user message; suspicious redemption attempts
require a captcha. Capy Pay login flow: a login under REVIEW flags the user for review. Lists
("Níveis de Severidade"): a HIGH hit raises an internal alert, a CRITICAL one also asks to
freeze the account (thresholds in ``[lists]``).
"""

from __future__ import annotations

from config.rules import RuleSet
from engine.scoring import Assessment
from schemas.models import (
    BlockedEntityType,
    DecisionAction,
    FraudBlock,
    GiftEvent,
    GiftEventType,
    InputEvent,
    ListSeverity,
    LoginEvent,
    Verdict,
)


def actions_for(
    event: InputEvent, assessment: Assessment, blocks: list[FraudBlock], rules: RuleSet
) -> tuple[list[DecisionAction], str | None]:
    """The actions to carry out, and the message to show the user (None: nothing to show)."""
    policy = rules.gift.actions
    actions: list[DecisionAction] = []
    message: str | None = None
    if isinstance(event, LoginEvent) and assessment.verdict is Verdict.REVIEW:
        actions.append(DecisionAction.FLAG_USER_FOR_REVIEW)
    severity = assessment.list_severity
    if severity is not None and _at_least(severity, rules.lists.alert_from):
        actions.append(DecisionAction.INTERNAL_ALERT)
    if severity is not None and _at_least(severity, rules.lists.freeze_from):
        actions.append(DecisionAction.FREEZE_ACCOUNT)
    if not isinstance(event, GiftEvent):
        return actions, message
    fired = {r.code for r in assessment.reasons if r.points > 0}
    if assessment.verdict is Verdict.BLOCK:
        if DecisionAction.INTERNAL_ALERT not in actions:
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


def _at_least(severity: ListSeverity, threshold: ListSeverity) -> bool:
    order = list(ListSeverity)
    return order.index(severity) >= order.index(threshold)
