"""Online learning (pure, no I/O, no clock): the models, and what labels are known when (the
model's inputs and reasons: ``engine.model_inputs``).

Labels arrive late (a chargeback, a closed case; on the handbook data 7 days after the
transaction). Two rules keep a prediction from using a label not yet known at the event's
time: the learner learns a label only once the stream's event time has passed its
``labelled_at`` (``PendingLabels``), and a worker scores an event with the newest model
snapshot whose knowledge ends at or before the event's time (``ModelShelf``). Known frauds
per terminal or card count only labels known by the event's time (``KnownFrauds``).

>>> from config.rules import load_rules
>>> model = OnlineModel(load_rules().model)
>>> inputs = model_inputs({"ml.amount_cents": 12_000, "tx.count.30d": 1}, load_rules().model)
>>> model.learn_label(inputs, True); model.labels, model.frauds
(1, 1)
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import hmac
import pickle
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from config.rules import ModelRules
from engine.admission import subject_of
from engine.batch import BatchTrainer, TreeModel
from engine.model_inputs import (
    FIRST_AT,
    LAST_AT,
    ModelScore,
    flow_inputs,
    known_fraud_fact,
    known_fraud_feature,
    model_inputs,
    names_its_inputs,
    top_contributions,
    tree_input_names,
    tree_input_values,
)
from engine.trees import TreeScorer
from engine.velocity import Features
from schemas.models import EventKind, InputEvent, KnownFraud, Label, ModelSnapshot

if TYPE_CHECKING:
    from river.compose import Pipeline

CHAMPION = "champion"
CHALLENGER = "challenger"
BATCH = "champion-batch"
LOGIN_MODEL = "champion-login"
GIFT_MODEL = "champion-gift"
"""Model names: the online model deciding transactions, one scored in shadow beside it, the
batch model (``engine.batch``) whose probability joins the deciding one's (``blend``), and
the online models of logins and gift events."""
FLOW_MODELS = {EventKind.LOGIN: LOGIN_MODEL, EventKind.GIFT: GIFT_MODEL}


class OnlineModel:
    """A class-weighted logistic regression on standardised inputs, learning one label at a
    time, plus Half-Space Trees on min-max scaled inputs for an anomaly score while labels are
    few (cold start), with a quantile of the scores the trees gave the last transactions they
    learned: raw scores are not calibrated, the quantile says which are unusual. All
    learn incrementally; ``score`` never changes them."""

    def __init__(self, rules: ModelRules) -> None:
        # Imported here: river's anomaly package loads scipy (~0.75 s at every start), and a
        # worker that scores only the snapshots it receives never builds a model (unpickling
        # one imports what it needs).
        from river import anomaly, linear_model, optim, preprocessing, stats

        self.rules = rules
        self.supervised: Pipeline = (
            preprocessing.StandardScaler()
            | linear_model.LogisticRegression(optimizer=optim.SGD(rules.learning_rate), l2=rules.l2)
        )
        self.unsupervised: Pipeline = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=rules.anomaly_trees,
            height=rules.anomaly_height,
            window_size=rules.anomaly_window,
            seed=rules.seed,
        )
        self.anomaly_scores = stats.RollingQuantile(
            rules.anomaly_quantile, rules.anomaly_quantile_window
        )
        self.anomaly_scored = 0
        self.labels = 0
        self.frauds = 0
        self.events = 0

    @property
    def ready(self) -> bool:
        return self.labels >= self.rules.min_labels and self.frauds >= self.rules.min_frauds

    def learn_label(self, inputs: dict[str, float], is_fraud: bool) -> None:
        weight = self.rules.fraud_weight if is_fraud else 1.0
        self.supervised.learn_one(inputs, is_fraud, w=weight)
        self.labels += 1
        self.frauds += int(is_fraud)

    @property
    def anomaly_cut(self) -> float | None:
        """Above this anomaly score a transaction is more unusual than ``anomaly_quantile`` of
        the last ``anomaly_quantile_window`` learned; None until the trees' window's worth of
        them were scored."""
        cut = self.anomaly_scores.get()
        if cut is None or self.anomaly_scored < self.rules.anomaly_window:
            return None
        return float(cut)

    def learn_event(self, inputs: dict[str, float]) -> None:
        """Unsupervised: every decided transaction, labelled or not; scored first (as a
        worker scored it, before learning it) for the quantile of the scores."""
        pipeline = self.unsupervised
        if not pipeline["HalfSpaceTrees"]._first_window:  # river scores 0 until then
            self.anomaly_scores.update(pipeline.score_one(inputs))
            self.anomaly_scored += 1
        pipeline.learn_one(inputs)
        self.events += 1

    def inputs_of(self, features: Features, rules: ModelRules) -> dict[str, float]:
        """The inputs this model learns and scores, from a decision's features."""
        return model_inputs(features, rules)

    def score_features(self, features: Features, rules: ModelRules) -> ModelScore:
        return self.score(self.inputs_of(features, rules))

    def explain(self, features: Features, rules: ModelRules) -> tuple[tuple[str, float], ...]:
        return self.score_features(features, rules).contributions

    def score(self, inputs: dict[str, float]) -> ModelScore:
        # The pipeline's steps by hand: the standardised inputs serve the probability and
        # the contributions both (predicting never updates the scaler).
        scaler, regression = self.supervised.steps.values()
        scaled = scaler.transform_one(inputs)
        probability = float(regression.predict_proba_one(scaled).get(True, 0.0))
        anomaly_score = float(self.unsupervised.score_one(inputs)) if self.events else 0.0
        weight = regression.weights.get
        pushes = ((name, weight(name, 0.0) * value) for name, value in scaled.items())
        contributions = top_contributions((p for p in pushes if p[1] > 0), self.rules.top_features)
        return ModelScore(probability, anomaly_score, self.anomaly_cut, self.ready, contributions)


class FlowModel(OnlineModel):
    """The online model of logins or gift events: the same learners, on ``flow_inputs``
    (named and sparse, no fixed vector: a worker scores it as it is, not frozen)."""

    def inputs_of(self, features: Features, rules: ModelRules) -> dict[str, float]:
        return flow_inputs(features, rules)


@lru_cache(maxsize=8)
def flow_rules(rules: ModelRules) -> ModelRules:
    """The model rules a flow model learns and scores with: the transactions' learning
    settings, the flows' own family, thresholds and points."""
    flows = rules.flows
    return rules.model_copy(
        update={
            "family": flows.family,
            "min_labels": flows.min_labels,
            "min_frauds": flows.min_frauds,
            "points": flows.points,
        }
    )


class ModelError(Exception):
    """A model snapshot that cannot be used: bad signature or unreadable."""


def version_of(rule_version: str, model_version: str | None) -> str:
    """How a decision's configuration is named: rules version, then model version."""
    return f"{rule_version}/{model_version}" if model_version else rule_version


class Learned(Protocol):
    """What a snapshot says a model learned from."""

    @property
    def labels(self) -> int: ...
    @property
    def frauds(self) -> int: ...
    @property
    def events(self) -> int: ...


def seal_model(model: Learned, key: bytes) -> tuple[bytes, str]:
    """The model as bytes with an HMAC-SHA256 signature: a worker loads a snapshot only if
    it was signed with the deployment's key, never bytes anyone could write to the topic."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, hmac.new(key, blob, hashlib.sha256).hexdigest()


def sealed_snapshot(
    name: str, version: str, model: Learned, known_until_ms: int, key: bytes, at: datetime
) -> ModelSnapshot:
    """The snapshot a worker loads: the model sealed with the deployment's ``key``, with what
    it learned from (``known_until_ms``: the latest ``labelled_at`` among its labels)."""
    blob, signature = seal_model(model, key)
    return ModelSnapshot(
        name=name,
        version=version,
        labels=model.labels,
        frauds=model.frauds,
        events=model.events,
        known_until=utc_from_ms(known_until_ms),
        created_at=at,
        blob=blob,
        signature=signature,
    )


def _unsealed(blob: bytes, signature: str, key: bytes) -> object:
    expected = hmac.new(key, blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ModelError("model snapshot signature does not match this deployment's key")
    return pickle.loads(blob)


def open_trees(blob: bytes, signature: str, key: bytes, family: str) -> TreeModel:
    """The trees of a signed batch snapshot, if they are of ``family``."""
    model = _unsealed(blob, signature, key)
    if not isinstance(model, TreeModel):
        raise ModelError(f"batch model snapshot holds a {type(model).__name__}")
    if model.family != family:
        raise ModelError(f"batch model family {model.family}, the rules expect {family}")
    return model


def tree_scorer(model: TreeModel, rules: ModelRules) -> TreeScorer:
    """What a worker walks: the snapshot's trees in ``engine.trees.FlatForest``."""
    return TreeScorer(model.forest(), rules)


def open_model(blob: bytes, signature: str, key: bytes, family: str) -> OnlineModel:
    """The model of a signed snapshot, if it is of ``family``: a snapshot of another family
    (left on the topic from before an upgrade) has other inputs or another shape."""
    model = _unsealed(blob, signature, key)
    if not isinstance(model, OnlineModel):
        raise ModelError(f"model snapshot holds a {type(model).__name__}")
    if model.rules.family != family:
        raise ModelError(f"model family {model.rules.family}, the rules expect {family}")
    return model


class ScoresFeatures(Protocol):
    """A model as scoring sees it: a learning ``OnlineModel`` (replays) or a worker's
    ``engine.frozen_model.FrozenModel`` of a snapshot."""

    def score_features(self, features: Features, rules: ModelRules) -> ModelScore:
        """The score; its contributions may be left out when its probability earns no points."""
        ...

    def explain(self, features: Features, rules: ModelRules) -> tuple[tuple[str, float], ...]:
        """The contributions of ``score_features``, always computed."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    version: str
    known_until_ms: int
    """The latest ``labelled_at`` among the labels it learned."""
    model: ScoresFeatures


class Blend:
    """The online model and the batch model scored together: the probability is
    ``weight`` x the batch model's plus the rest x the online model's; the anomaly score
    is the online model's. The reasons name the inputs of the model weighing most."""

    def __init__(self, online: ScoresFeatures, batch: ScoresFeatures, weight: float) -> None:
        self.online, self.batch, self.weight = online, batch, weight

    def score_features(self, features: Features, rules: ModelRules) -> ModelScore:
        online = self.online.score_features(features, rules)
        batch = self.batch.score_features(features, rules)
        weight = self.weight
        probability = weight * batch.probability + (1 - weight) * online.probability
        leading = batch if self._leading is self.batch else online
        contributions = leading.contributions
        if names_its_inputs(probability, 0.0, None, True, rules) and not (  # always ready
            names_its_inputs(
                leading.probability, leading.anomaly, leading.anomaly_cut, leading.ready, rules
            )
        ):  # the blend's reason names inputs the leading model did not work out alone
            contributions = self._leading.explain(features, rules)
        return ModelScore(
            probability,
            online.anomaly,
            online.anomaly_cut,
            True,
            contributions,
            (("online", online.probability), ("batch", batch.probability)),
        )

    def explain(self, features: Features, rules: ModelRules) -> tuple[tuple[str, float], ...]:
        return self._leading.explain(features, rules)

    @property
    def _leading(self) -> ScoresFeatures:
        """The model weighing most, whose inputs the reasons name."""
        return self.batch if self.weight >= 0.5 else self.online


def blend(
    online: LoadedModel | None, batch: LoadedModel | None, weight: float
) -> LoadedModel | None:
    """The model to decide with: the online model alone until a batch model is loaded,
    then both (``Blend``), named by both versions and knowing what the later knew."""
    if batch is None or online is None:
        return online or batch
    return LoadedModel(
        f"{online.version}+{batch.version}",
        max(online.known_until_ms, batch.known_until_ms),
        Blend(online.model, batch.model, weight),
    )


class ModelShelf:
    """The last few snapshots a worker received. An event is scored with the newest one whose
    knowledge ends at or before the event's time; when even the oldest knows more (replaying
    old events), the oldest is used and ``pick`` says so."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._models: list[LoadedModel] = []

    def add(self, loaded: LoadedModel) -> None:
        if any(m.version == loaded.version for m in self._models):
            return
        bisect.insort(self._models, loaded, key=lambda m: m.known_until_ms)
        del self._models[: -self.keep]

    def pick(self, at_ms: int) -> tuple[LoadedModel | None, bool]:
        """(the model for an event at ``at_ms``, whether it knows labels from after it)."""
        if not self._models:
            return None, False
        usable = bisect.bisect_right([m.known_until_ms for m in self._models], at_ms)
        if usable == 0:
            return self._models[0], True
        return self._models[usable - 1], False


@dataclass(order=True)
class PendingLabel:
    labelled_at_ms: int
    event_id: str
    is_fraud: bool = field(compare=False)


class PendingLabels:
    """Labels waiting for the stream's event time to reach the moment they became known."""

    def __init__(self) -> None:
        self._heap: list[PendingLabel] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, label: PendingLabel) -> None:
        heapq.heappush(self._heap, label)

    def event_ids(self) -> set[str]:
        return {label.event_id for label in self._heap}

    def release(self, event_time_ms: int) -> Iterator[PendingLabel]:
        """The labels known at ``event_time_ms``, oldest knowledge first."""
        while self._heap and self._heap[0].labelled_at_ms <= event_time_ms:
            yield heapq.heappop(self._heap)


class KnownFrauds:
    """Frauds known per entity (``terminal:t1``, ``card:c1``): when each happened and when its
    label became known. Counts read only labels known at the asked time."""

    def __init__(self, horizon_ms: int, keep: int) -> None:
        self.horizon_ms, self.keep = horizon_ms, keep
        self._by_entity: dict[str, list[KnownFraud]] = {}
        self._times: dict[str, list[tuple[float, int]]] = {}
        """Per entity, each fraud's (labelled at, epoch ms; happened at, epoch s), in the
        list's order: every scored event reads them, so they are converted once."""

    def _set(self, entity_key: str, frauds: list[KnownFraud]) -> None:
        self._by_entity[entity_key] = frauds
        self._times[entity_key] = [
            (k.labelled_at.timestamp() * 1000, int(k.occurred_at.timestamp())) for k in frauds
        ]

    def add(self, entity_key: str, fraud: KnownFraud) -> bool:
        """Record a fraud on the entity (False: already known, nothing changed)."""
        known = self._by_entity.get(entity_key, [])
        if any(k.event_id == fraud.event_id for k in known):
            return False
        known = sorted([*known, fraud], key=lambda k: k.labelled_at)
        newest = known[-1].labelled_at.timestamp() * 1000
        kept = [k for k in known if newest - k.labelled_at.timestamp() * 1000 <= self.horizon_ms]
        self._set(entity_key, kept[-self.keep :])
        return True

    def of(self, entity_key: str) -> list[KnownFraud]:
        return list(self._by_entity.get(entity_key, []))

    def replace(self, entity_key: str, frauds: Iterable[KnownFraud]) -> None:
        """Take the entity's whole list as published (the view's update)."""
        self._set(entity_key, sorted(frauds, key=lambda k: k.labelled_at))

    def count(self, entity_key: str, at_ms: int, window_ms: int) -> int:
        """Frauds on the entity whose label became known in (at - window, at]."""
        times = self._times.get(entity_key, ())
        return sum(1 for labelled, _ in times if at_ms - window_ms < labelled <= at_ms)

    def features(
        self, entity_keys: Iterable[str], at_ms: int, rules: ModelRules, windows: dict[str, int]
    ) -> Features:
        """Known-fraud counts of the event's entities, for every configured type and window,
        and when the earliest and the latest fraud known in the longest window happened."""
        by_type = {key.partition(":")[0]: key for key in entity_keys}
        longest_ms = max((windows[w] for w in rules.known_fraud_windows), default=0) * 1000
        features: Features = {}
        for entity_type in rules.known_fraud_entities:
            key = by_type.get(entity_type)
            if not key or key not in self._times:  # most entities have none
                features.update(_nothing_known(entity_type, rules.known_fraud_windows))
                continue
            for window in rules.known_fraud_windows:
                count = self.count(key, at_ms, windows[window] * 1000)
                features[known_fraud_feature(entity_type, window)] = count
            happened = self.happened(key, at_ms, longest_ms)
            first, last = (min(happened), max(happened)) if happened else (-1, -1)
            features[known_fraud_fact(entity_type, FIRST_AT)] = first
            features[known_fraud_fact(entity_type, LAST_AT)] = last
        return features

    def happened(self, entity_key: str, at_ms: int, window_ms: int) -> list[int]:
        """When (epoch seconds) the frauds on the entity whose label became known in
        (at - window, at] happened."""
        return [
            occurred
            for labelled, occurred in self._times.get(entity_key, ())
            if at_ms - window_ms < labelled <= at_ms
        ]


@lru_cache(maxsize=64)
def _nothing_known(entity_type: str, windows: tuple[str, ...]) -> Features:
    """The known-fraud features of an entity with no fraud known, in ``features``' order
    (read only: ``KnownFrauds.features`` copies it)."""
    nothing: Features = {known_fraud_feature(entity_type, window): 0 for window in windows}
    nothing[known_fraud_fact(entity_type, FIRST_AT)] = -1
    nothing[known_fraud_fact(entity_type, LAST_AT)] = -1
    return nothing


@dataclass(frozen=True)
class Example:
    """A decided transaction waiting for its label: the model inputs it was scored with."""

    inputs: dict[str, float]
    occurred_ms: int
    label_entities: tuple[str, ...]
    tree_values: tuple[float, ...] = ()
    """The batch model's inputs (``tree_input_values``), when a batch model is trained."""


@dataclass
class LearnStep:
    """What one call changed: labels learned, and entities whose known frauds changed."""

    learned: int = 0
    entities: set[str] = field(default_factory=set)


class Learner:
    """The single writer of the model. Decisions arrive in event-time order (roughly: several
    partitions interleave), labels whenever they become known. A label is learned only once
    the decisions' event time reaches its ``labelled_at``, so a model snapshot never knows a
    label that its scoring time would not know. Examples are kept in ``examples`` (any
    mapping: a dict in memory, RocksDB in the learner process) until labelled or too old.
    Given ``rows`` (same kind of mapping) and the batch model on in its rules, it also
    trains the batch model: learned examples go on to its trainer for the training window."""

    def __init__(
        self,
        rules: ModelRules,
        horizon_ms: int,
        examples: MutableMapping[str, Example],
        rows: MutableMapping[str, bytes] | None = None,
    ) -> None:
        self.rules = rules
        self.model = OnlineModel(rules)
        self.batch = (
            BatchTrainer.of(tree_input_names(rules), rows, rules.batch)
            if rules.batch.enabled and rows is not None
            else None
        )
        self.trees: TreeModel | None = None
        """The last batch model trained."""
        self.known = KnownFrauds(horizon_ms, rules.known_fraud_keep)
        self.pending = PendingLabels()
        self.examples = examples
        self.event_time_ms = 0
        self.known_until_ms = 0
        self.orphans: dict[str, PendingLabel] = {}
        """Labels that came before their decision, by event id."""
        self.unmatched_labels = 0
        """Labels whose decision never came within the wait."""

    def resume(
        self,
        rules: ModelRules,
        examples: MutableMapping[str, Example],
        rows: MutableMapping[str, bytes] | None,
    ) -> None:
        """Carry on from a checkpoint with the stores reopened and the current ``rules`` (of
        the same family: the same inputs); a learner checkpointed before batch models gets
        a trainer now."""
        self.rules, self.examples = rules, examples
        batch: BatchTrainer | None = getattr(self, "batch", None)
        self.trees = getattr(self, "trees", None)
        if not rules.batch.enabled or rows is None:
            self.batch = None
        elif batch is None:
            self.batch = BatchTrainer.of(tree_input_names(rules), rows, rules.batch)
        else:
            batch.rows, self.batch = rows, batch

    @classmethod
    def for_flow(
        cls, rules: ModelRules, horizon_ms: int, examples: MutableMapping[str, Example]
    ) -> Learner:
        """The learner of a flow's model (logins, gifts): no batch model, no known frauds."""
        learner = cls(flow_rules(rules), horizon_ms, examples)
        learner.model = FlowModel(learner.rules)
        return learner

    def observe_decision(
        self, event_id: str, occurred_ms: int, features: Features, label_entities: Iterable[str]
    ) -> LearnStep:
        inputs = self.model.inputs_of(features, self.rules)
        trees = tuple(tree_input_values(features, self.rules)) if self.batch else ()
        self.examples[event_id] = Example(inputs, occurred_ms, tuple(label_entities), trees)
        self.model.learn_event(inputs)
        early = self.orphans.pop(event_id, None)
        known = self._queue(early) if early is not None else set()
        step = self.advance(occurred_ms)
        step.entities |= known
        return step

    def observe_label(
        self, event_ids: Iterable[str], is_fraud: bool, labelled_ms: int
    ) -> LearnStep:
        """Queue the label's examples; a fraud is known on their terminal and card at once
        (counts read it only from ``labelled_at`` on)."""
        known: set[str] = set()
        for event_id in event_ids:
            label = PendingLabel(labelled_ms, event_id, is_fraud)
            if event_id in self.examples:
                known |= self._queue(label)
            else:  # its decision is not here yet (another partition): it waits for it
                self.orphans[event_id] = label
        released = self.advance(self.event_time_ms)
        released.entities |= known
        return released

    def _queue(self, label: PendingLabel) -> set[str]:
        """Queue a label whose example is here; the entities whose known frauds changed."""
        self.pending.add(label)
        if not label.is_fraud:
            return set()
        example = self.examples[label.event_id]
        fraud = KnownFraud(
            event_id=label.event_id,
            occurred_at=utc_from_ms(example.occurred_ms),
            labelled_at=utc_from_ms(label.labelled_at_ms),
        )
        return {entity for entity in example.label_entities if self.known.add(entity, fraud)}

    def advance(self, event_time_ms: int) -> LearnStep:
        """Move event time forward and learn every label known by then."""
        self.event_time_ms = max(self.event_time_ms, event_time_ms)
        step = LearnStep()
        for label in self.pending.release(self.event_time_ms):
            example = self.examples.pop(label.event_id, None)
            if example is None:
                continue  # learned already (a re-delivered label)
            self.model.learn_label(example.inputs, label.is_fraud)
            self.known_until_ms = max(self.known_until_ms, label.labelled_at_ms)
            step.learned += 1
            if self.batch is not None:
                self.batch.add(
                    label.event_id,
                    example.occurred_ms,
                    label.labelled_at_ms,
                    example.tree_values,
                    label.is_fraud,
                )
        return step

    def retrain(self) -> TreeModel | None:
        """Train the batch model if its schedule says so at the current event time: the new
        trees (also kept in ``trees``), or None (not due, or too few frauds yet)."""
        if self.batch is None or not self.batch.due(self.event_time_ms):
            return None
        trees = self.batch.train(self.event_time_ms, self.rules.batch)
        if trees is not None:
            self.trees = trees
        return trees

    def forget_older_than(self, max_age_ms: int) -> int:
        """Drop examples no label came for within ``max_age_ms``, and labels no decision came
        for (bounded memory); how many examples were dropped."""
        horizon = self.event_time_ms - max_age_ms
        waiting = self.pending.event_ids()
        stale = [
            k for k, e in self.examples.items() if e.occurred_ms < horizon and k not in waiting
        ]
        for key in stale:
            del self.examples[key]
        orphans = [k for k, label in self.orphans.items() if label.labelled_at_ms < horizon]
        for key in orphans:
            del self.orphans[key]
        self.unmatched_labels += len(orphans)
        return len(stale)


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def event_label(event: InputEvent, is_fraud: bool, labelled_at: datetime, source: str) -> Label:
    """The label of one event (a chargeback, a closed case, the handbook's truth), keyed by
    its subject (a transaction's user)."""
    subject = subject_of(event)
    return Label(
        label_id=f"label-{event.event_id}",
        subject_type=subject.type,
        subject_id=subject.id,
        is_fraud=is_fraud,
        event_ids=[event.event_id],
        labelled_at=labelled_at,
        source=source,
    )
