"""One event through the whole pure core: state update, assessment, automatic actions.

The scoring agent and the tests both go through here, so what is tested is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.rules import RuleSet
from engine.accounts import FROZEN_FEATURE
from engine.actions import actions_for
from engine.blocks import blocks_for, fraud_event_of
from engine.features import record_and_read
from engine.learning import LoadedModel, flow_rules
from engine.model_inputs import ModelScore, flow_features, model_features, previous_amounts
from engine.scoring import Assessment, assess
from engine.velocity import Features, VelocityState
from schemas.models import DecisionAction, FraudBlock, FraudEvent, InputEvent, TransactionEvent


@dataclass(frozen=True)
class Outcome:
    assessment: Assessment
    blocks: list[FraudBlock]
    fraud_event: FraudEvent | None
    actions: list[DecisionAction]
    user_message: str | None
    model_score: ModelScore | None = None
    model_version: str | None = None


def decide_event(
    state: VelocityState,
    event: InputEvent,
    rules: RuleSet,
    entity_blocked: bool = False,
    lists: Features | None = None,
    model: LoadedModel | None = None,
    known_frauds: Features | None = None,
    clock_skew_s: int = 0,
    account_frozen: bool = False,
) -> Outcome:
    """Update the subject's ``state`` with ``event`` and decide it; ``entity_blocked`` says
    whether an entity it names is under a block known at this time, ``lists`` its list hits
    (``engine.lists.list_features``), ``clock_skew_s`` how far ahead of its arrival it was
    stamped when it is scored as of its arrival. A transaction also gets the online
    ``model``'s score, read from its features plus the ``known_frauds`` of its terminal and
    card; a login or gift event its flow's model's score (``engine.learning.FlowModel``).
    ``account_frozen``: the event's user's account is frozen (``engine.accounts``).
    """
    if account_frozen:
        lists = {**(lists or {}), FROZEN_FEATURE: 1}
    features = record_and_read(state, event, rules, entity_blocked, lists or {}, clock_skew_s)
    scored: tuple[ModelScore, str] | None = None
    offset = rules.capypay.velocity.local_utc_offset_hours
    if isinstance(event, TransactionEvent) and rules.model.enabled:
        previous = previous_amounts(
            state, event, rules.velocity.windows[rules.model.batch.amount_window]
        )
        features.update(model_features(event, known_frauds or {}, offset, previous))
        if model is not None:
            scored = model.model.score_features(features, rules.model), model.version
    elif (
        not isinstance(event, TransactionEvent)
        and rules.model.enabled
        and rules.model.flows.enabled
    ):
        agents = rules.detection.login.scripted_agents
        features.update(flow_features(event, offset, agents))
        if model is not None:
            scored = model.model.score_features(features, flow_rules(rules.model)), model.version
    assessment = assess(event, rules, features, scored)
    blocks = blocks_for(event, assessment, rules.gift.blocks)
    for block in blocks:
        since_ms = int(block.created_at.timestamp() * 1000)
        state.block(block.reason, int(block.expires_at.timestamp() * 1000), since_ms)
    actions, message = actions_for(event, assessment, blocks, rules)
    return Outcome(
        assessment,
        blocks,
        fraud_event_of(event, assessment),
        actions,
        message,
        *(scored or (None, None)),
    )


def model_of(outcome: Outcome) -> tuple[ModelScore, str] | None:
    """The (score, version) of the model that scored the outcome's event, if one did."""
    if outcome.model_score is None or outcome.model_version is None:
        return None
    return outcome.model_score, outcome.model_version
