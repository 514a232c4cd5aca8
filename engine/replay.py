"""Replaying archived events through the scoring code in one process (pure, no I/O).

Backtests and the quick evaluation use it: every event goes through ``decide_event`` exactly
as in the worker, with the subject's state, the entity windows and blocks, the lists, the
frozen accounts, and the online model learning from labels that are fed in only once their
``labelled_at`` has come (``engine.learning.Learner``). What the pipeline spreads over
partitions and topics is here a dictionary of states, so the numbers are those of a worker
that never lags.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import count

from config.rules import RuleSet
from engine.accounts import AccountView
from engine.admission import is_redemption_step, subject_of
from engine.decide import Outcome, decide_event
from engine.decisions import build_decision
from engine.entities import (
    BlockView,
    entity_keys,
    named_entity_keys,
    parse_entity_key,
    record_entity,
)
from engine.features import at_ms_of
from engine.learning import Learner, LoadedModel, blend, tree_scorer
from engine.lists import ListView, list_features
from engine.model_inputs import is_model_scored
from engine.velocity import VelocityState
from schemas.models import DecisionAction, InputEvent, Label

_LABEL, _EVENT = 0, 1  # at the same instant a label is known before the event is scored


@dataclass(frozen=True)
class Replayed:
    event: InputEvent
    outcome: Outcome


class Replay:
    """The engine's state for one replay: subjects, entities, blocks, lists and the learner."""

    def __init__(self, rules: RuleSet, hash_key: bytes, lists: ListView, learn: bool) -> None:
        self.rules, self.hash_key, self.lists = rules, hash_key, lists
        self.states: dict[str, VelocityState] = {}
        self.blocks = BlockView()
        self.accounts = AccountView()
        horizon_ms = rules.velocity.horizon_s * 1000
        self.learner = Learner(rules.model, horizon_ms, {}, {}) if learn else None
        self.batch: LoadedModel | None = None
        """The batch model last trained, as a worker would load its snapshot."""

    def run(self, events: Iterable[InputEvent], labels: Iterable[Label]) -> Iterator[Replayed]:
        """Events and labels merged in time order (both must come sorted by their time)."""
        tick = count()
        timed_events = ((at_ms_of(e), _EVENT, next(tick), e) for e in events)
        timed_labels = (
            (int(label.labelled_at.timestamp() * 1000), _LABEL, next(tick), label)
            for label in labels
        )
        for _, kind, _, item in heapq.merge(timed_events, timed_labels):
            if kind == _LABEL:
                assert isinstance(item, Label)
                self._label(item)
            else:
                assert not isinstance(item, Label)
                yield Replayed(item, self.decide(item))

    def _label(self, label: Label) -> None:
        if self.learner is not None:
            self.learner.observe_label(
                label.event_ids, label.is_fraud, int(label.labelled_at.timestamp() * 1000)
            )

    def _freeze(self, event: InputEvent, outcome: Outcome) -> None:
        """Freeze the account as the worker does, for the user's next events."""
        decision = build_decision(
            event,
            outcome.assessment,
            rule_version=self.rules.version,
            received_at=event.occurred_at,
            decided_at=event.occurred_at,
            actions=outcome.actions,
        )
        freeze = self.accounts.freeze_for(decision)
        if freeze is not None:
            self.accounts.apply(freeze)

    def decide(self, event: InputEvent) -> Outcome:
        rules, at_ms = self.rules, at_ms_of(event)
        entities = entity_keys(event, rules.entities, self.hash_key)
        model_entities = named_entity_keys(event, rules.model.known_fraud_entities, self.hash_key)
        learner = self.learner
        model = known = None
        if learner is not None:
            learner.advance(at_ms)
            trees = learner.retrain()
            if trees is not None:
                version = f"{trees.family}.replay.{learner.batch.trainings if learner.batch else 0}"
                scorer = tree_scorer(trees, rules.model)
                self.batch = LoadedModel(version, trees.known_until_ms, scorer)
            online = LoadedModel(
                f"{rules.model.family}.replay", learner.known_until_ms, learner.model
            )
            model = blend(online, self.batch, rules.model.batch.weight)
            known = learner.known.features(
                model_entities, at_ms, rules.model, rules.velocity.windows
            )
        subject = subject_of(event).key
        state = self.states.setdefault(subject, VelocityState())
        lists = list_features(self.lists.hits(event, self.hash_key))
        blocked = self.blocks.blocked(entities, at_ms, is_redemption_step(event))
        frozen = self.accounts.frozen_user(event) is not None
        outcome = decide_event(
            state, event, rules, blocked, lists, model, known, account_frozen=frozen
        )
        if DecisionAction.FREEZE_ACCOUNT in outcome.actions:
            self._freeze(event, outcome)
        for key in entities:
            entity = parse_entity_key(key)
            if entity is None:
                continue
            entity_state = self.states.setdefault(key, VelocityState())
            windows, horizon_s = rules.velocity.windows, rules.velocity.horizon_s
            for block in record_entity(
                entity_state,
                event,
                *entity,
                rules.entities,
                rules.gift.consecutive_failures,
                windows,
                horizon_s,
            ):
                self.blocks.apply(block)
        features = outcome.assessment.features
        if learner is not None and is_model_scored(features):
            learner.observe_decision(event.event_id, at_ms, features, model_entities)
        return outcome
