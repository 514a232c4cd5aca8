"""Replaying archived events through the scoring code in one process (pure, no I/O).

Backtests and the quick evaluation use it: every event goes through ``engine.step`` exactly
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
from engine.admission import subject_of
from engine.decide import Outcome
from engine.entities import BlockView, named_entity_keys
from engine.features import at_ms_of
from engine.learning import Learner, LoadedModel, blend, tree_scorer
from engine.lists import ListView
from engine.model_inputs import is_model_scored
from engine.networks import NetworkIndex
from engine.step import Effects, Scoring, Views, count_step, decide_step
from engine.velocity import VelocityState
from schemas.models import Decision, FraudBlock, InputEvent, Label, TransactionEvent

_LABEL, _EVENT = 0, 1  # at the same instant a label is known before the event is scored


@dataclass(frozen=True)
class Replayed:
    event: InputEvent
    outcome: Outcome
    decision: Decision


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
        self.views = Views(self.blocks, lists, self.accounts, NetworkIndex(), hash_key)

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
                effects = self.step(item)
                yield Replayed(item, effects.outcome, effects.decision)

    def _label(self, label: Label) -> None:
        if self.learner is not None:
            self.learner.observe_label(
                label.event_ids, label.is_fraud, int(label.labelled_at.timestamp() * 1000)
            )

    def decide(self, event: InputEvent) -> Outcome:
        return self.step(event).outcome

    def step(self, event: InputEvent) -> Effects:
        """Decide ``event`` as a worker does (``engine.step``), with the learner's model, and
        count it in its entities' and giver's states at once (a worker that never lags)."""
        rules, learner = self.rules, self.learner
        if learner is not None:
            learner.advance(at_ms_of(event))
            trees = learner.retrain()
            if trees is not None:
                version = f"{trees.family}.replay.{learner.batch.trainings if learner.batch else 0}"
                scorer = tree_scorer(trees, rules.model)
                self.batch = LoadedModel(version, trees.known_until_ms, scorer)
        state = self.states.setdefault(subject_of(event).key, VelocityState())
        at = event.occurred_at
        effects = decide_step(
            state,
            event,
            rules,
            self.views,
            self._scoring_for,
            at.timestamp(),
            at,
            count_here=self._count,
        )
        for key in effects.counts_at:
            for block in self._count(key, event):
                self.blocks.apply(block)
        features = effects.outcome.assessment.features
        if learner is not None and is_model_scored(features):
            labelled = list(effects.decision.label_entities)
            learner.observe_decision(event.event_id, at_ms_of(event), features, labelled)
        return effects

    def _count(self, key: str, event: InputEvent) -> list[FraudBlock]:
        """Count ``event`` in the state under ``key``: a replay holds every state."""
        counted = self.states.setdefault(key, VelocityState())
        return count_step(counted, key, event, self.rules)

    def _scoring_for(self, event: InputEvent, at_ms: int) -> Scoring:
        """The learner's online model blended with the batch model last trained, for a
        transaction (replays do not train the logins' and gifts' models)."""
        learner, rules = self.learner, self.rules
        if learner is None or not isinstance(event, TransactionEvent):
            return Scoring()
        labelled = named_entity_keys(event, rules.model.known_fraud_entities, self.hash_key)
        online = LoadedModel(f"{rules.model.family}.replay", learner.known_until_ms, learner.model)
        model = blend(online, self.batch, rules.model.batch.weight)
        known = learner.known.features(labelled, at_ms, rules.model, rules.velocity.windows)
        return Scoring(model, known, tuple(labelled))
