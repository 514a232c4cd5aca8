"""One event's whole effect on the engine, pure: what the worker publishes and what a replay
keeps. The scoring agent reads the records and states, calls these and writes what they
return; ``engine.replay`` calls the very same, so a backtest decides as a worker does.

``decide_step`` takes the subject's state and the views every worker keeps whole (blocks,
lists, frozen accounts, anonymising networks) and returns the decision with everything it
sets off: the blocks it places, the fraud event, the account freeze and its audit record,
the audit record of an allow-list override, the case command, the entries that list the
event's user for a listed identity it carried (and their audit records), the challenger's
would-be decision, and the keys of the entity and giver states that count the event next
(``count_step``, each on the worker owning that key). An entity whose state the caller holds
counts the event before it is decided (``CountHere``), so the event that crosses one of its
limits is stopped by the block it places, as a rate limit refuses the attempt over its
maximum. Nothing here reads a clock, a topic or a store; the views it touches are the
caller's, and only a freeze, a derived list entry or an entity's new block changes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from config.rules import RuleSet
from engine.accounts import AccountView
from engine.admission import as_of_arrival, is_redemption_step, subject_of
from engine.audit import account_state_record, link_record, override_record
from engine.cases import case_command_for
from engine.decide import Outcome, decide_event, model_of
from engine.decisions import build_decision
from engine.entities import BlockView, entity_keys, keyed_id, parse_entity_key, record_entity
from engine.features import at_ms_of, giver_key_of_redemption, record_redemption
from engine.learning import LoadedModel, version_of
from engine.lists import ListView, links_for, list_features
from engine.model_inputs import is_model_scored
from engine.networks import NetworkIndex, flagged
from engine.scoring import assess
from engine.velocity import Features, VelocityState
from schemas.models import (
    AccountState,
    AuditRecord,
    CaseCommand,
    Decision,
    FraudBlock,
    FraudEvent,
    GiftEvent,
    InputEvent,
    ListEntry,
    ShadowDecision,
)


@dataclass(frozen=True)
class Views:
    """What an event is decided against besides its subject's state: the same on every
    worker (each follows their compacted topics)."""

    blocks: BlockView
    lists: ListView
    accounts: AccountView
    networks: NetworkIndex
    hash_key: bytes


@dataclass(frozen=True)
class Scoring:
    """The model an event is scored with, as the caller picked it (snapshots on a worker,
    the learner in a replay), with its terminal and card's known frauds."""

    model: LoadedModel | None = None
    known_frauds: Features | None = None
    label_entities: tuple[str, ...] = ()
    """The entity keys the event's label will be known by (terminal, card)."""


ScoringFor = Callable[[InputEvent, int], Scoring]
"""The caller's choice of model for an event decided as of this millisecond."""

CountHere = Callable[[str, InputEvent], list[FraudBlock] | None]
"""Count the event now in the entity state under this key, where the caller holds it: the
blocks that places (``count_step``); None where the key is counted later, elsewhere."""

Challenger = Callable[[InputEvent, Outcome, Decision, int], ShadowDecision]
"""The challenger's would-be decision on the champion's outcome (``shadow_decision``)."""


@dataclass(frozen=True)
class Effects:
    """What deciding one event produces, in the order a worker publishes it."""

    event: InputEvent
    """The event as it was scored: as of its arrival when its clock ran ahead, with the
    flags of the listed networks its IP is in."""
    outcome: Outcome
    decision: Decision
    blocks: list[FraudBlock]
    """The blocks it places: its entities' (counted before it was decided), then its
    subject's."""
    fraud_event: FraudEvent | None
    shadow: ShadowDecision | None
    override: AuditRecord | None
    freeze: AccountState | None
    freeze_audit: AuditRecord | None
    case_command: CaseCommand | None
    links: list[ListEntry]
    """The entries listing the event's user by a listed identity it carried, new here."""
    link_audits: list[AuditRecord]
    counts_at: list[str]
    """The state keys that count the event next: the entities it names that were not
    counted before the decision, and the giver of a redemption."""


def decide_step(
    state: VelocityState,
    stamped: InputEvent,
    rules: RuleSet,
    views: Views,
    scoring_for: ScoringFor,
    arrived_s: float,
    decided_at: datetime,
    challenger: Challenger | None = None,
    count_here: CountHere | None = None,
) -> Effects:
    """Decide ``stamped`` (updating its subject's ``state``) as its occurred_at says, or as
    of its arrival (``arrived_s``, the broker's timestamp) when its clock ran too far ahead;
    the decision keeps the stamped time.
    The entities ``count_here`` holds count the event first; the blocks they place are
    applied to ``views.blocks`` and returned with the decision's. A freeze the decision asks
    for is applied to ``views.accounts`` at once, so the user's next events are frozen."""
    event, skew_s = as_of_arrival(stamped, int(arrived_s * 1000), rules.validation)
    event = flagged(event, views.networks)
    at_ms = at_ms_of(event)
    entities = entity_keys(event, rules.entities, views.hash_key)
    counts_at: list[str] = []
    entity_blocks: list[FraudBlock] = []
    for key in entities:
        placed = count_here(key, event) if count_here is not None else None
        if placed is None:
            counts_at.append(key)
            continue
        for block in placed:
            views.blocks.apply(block)
        entity_blocks += placed
    blocked = views.blocks.blocked(entities, at_ms, is_redemption_step(event))
    hits = views.lists.hits(event, views.hash_key)
    lists = list_features(hits)
    links = links_for(event, hits, views.lists, views.hash_key)
    for link in links:  # the user's next events, whatever they carry, are screened with it
        views.lists.apply(link)
    frozen = views.accounts.frozen_user(event) is not None
    scoring = scoring_for(event, at_ms)
    outcome = decide_event(
        state,
        event,
        rules,
        blocked,
        lists,
        scoring.model,
        scoring.known_frauds,
        skew_s,
        frozen,
    )
    fraud_event = outcome.fraud_event
    if fraud_event is not None and event.ip:  # known as IP blocks know it, never in clear
        fraud_event = fraud_event.model_copy(update={"ip_id": keyed_id(event.ip, views.hash_key)})
    decision = build_decision(
        stamped,
        outcome.assessment,
        rule_version=rules.version,
        received_at=datetime.fromtimestamp(arrived_s, UTC),
        decided_at=decided_at,
        actions=outcome.actions,
        user_message=outcome.user_message,
        model=model_of(outcome),
        label_entities=list(scoring.label_entities),
    )
    freeze = views.accounts.freeze_for(decision)
    freeze_audit = None
    if freeze is not None:
        previous = views.accounts.states.get(freeze.user_id)
        views.accounts.apply(freeze)
        freeze_audit = account_state_record(None, previous, freeze)
    giver = giver_key_of_redemption(event)
    return Effects(
        event=event,
        outcome=outcome,
        decision=decision,
        blocks=[*entity_blocks, *outcome.blocks],
        fraud_event=fraud_event,
        shadow=challenger(event, outcome, decision, at_ms) if challenger else None,
        override=override_record(decision),
        freeze=freeze,
        freeze_audit=freeze_audit,
        case_command=case_command_for(decision, outcome.assessment.list_severity, rules.cases),
        links=links,
        link_audits=[link_record(link, event.event_id) for link in links],
        counts_at=[*counts_at, *([giver] if giver is not None else [])],
    )


class UnexpectedKey(ValueError):
    """A state key that is neither an entity the event names nor its gift's giver."""


def count_step(
    state: VelocityState, key: str, event: InputEvent, rules: RuleSet
) -> list[FraudBlock]:
    """Count a decided event in the state under ``key`` (one of its ``counts_at``): an
    entity's windows, which may place blocks (in force at once: the caller applies them to
    its block view and publishes them), or the giver's record of a redemption."""
    if (entity := parse_entity_key(key)) is not None:
        windows, horizon_s = rules.velocity.windows, rules.velocity.horizon_s
        consecutive = rules.gift.consecutive_failures
        return record_entity(state, event, *entity, rules.entities, consecutive, windows, horizon_s)
    if isinstance(event, GiftEvent) and key == giver_key_of_redemption(event):
        record_redemption(state, event, rules.velocity.horizon_s)
        return []
    raise UnexpectedKey(f"{key.split(':')[0]} is not a state the event counts in")


def is_subject_key(key: str, event: InputEvent) -> bool:
    """Whether ``key`` is the state the event is decided with (else it counts there)."""
    return key == subject_of(event).key


def shadow_decision(
    event: InputEvent,
    outcome: Outcome,
    decision: Decision,
    challenger: RuleSet,
    model: LoadedModel | None,
) -> ShadowDecision:
    """The challenger's would-be decision on the champion's features (its own ``model`` and
    rules; the windows, lists and blocks are the champion's)."""
    features = outcome.assessment.features
    scored = None
    if model is not None and is_model_scored(features):
        scored = model.model.score_features(features, challenger.model), model.version
    would = assess(event, challenger, features, scored)
    return ShadowDecision(
        event_id=decision.event_id,
        event_kind=decision.event_kind,
        subject_id=decision.subject_id,
        event_occurred_at=decision.event_occurred_at,
        amount_cents=getattr(event, "amount_cents", None),
        champion_decision=decision.decision,
        champion_score=decision.score,
        champion_version=version_of(decision.rule_version, decision.model_version),
        challenger_decision=would.verdict,
        challenger_score=would.score,
        challenger_version=version_of(challenger.version, scored[1] if scored else None),
        challenger_reasons=[reason.code for reason in would.reasons],
    )
