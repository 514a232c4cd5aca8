"""The batch model's pure parts: the trees a worker walks give LightGBM's own predictions,
the training rows respect the label delay, and the features that read known frauds see
only labels known at the event's time."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime, timedelta

import lightgbm
import numpy
import pytest

from config.rules import load_rules
from engine.batch import BatchTrainer, fit_trees, forest_lists, kept_for_training
from engine.learning import (
    BATCH,
    Blend,
    KnownFrauds,
    Learner,
    LoadedModel,
    ModelError,
    blend,
    open_trees,
    sealed_snapshot,
    tree_scorer,
)
from engine.model_inputs import (
    FIRST_AT,
    LAST_AT,
    ModelScore,
    known_fraud_fact,
    median_of,
    model_features,
    probability_points_of,
    tree_input_names,
    tree_input_values,
)
from engine.trees import FlatForest, logistic
from schemas.models import KnownFraud
from tests import factories

DAY_MS = 86_400_000
RULES = load_rules()
MODEL = RULES.model
BATCH_RULES = MODEL.batch.model_copy(
    update={"rounds": 30, "min_leaf": 2, "min_frauds": 2, "legit_sample": 1.0, "threads": 1}
)


def synthetic(rows: int, seed: int) -> tuple[list[list[float]], list[bool]]:
    """Rows of the tree inputs' width: fraud when the amount and a count are both high."""
    rng = random.Random(seed)
    width = len(tree_input_names(MODEL))
    data, labels = [], []
    for _ in range(rows):
        row = [rng.uniform(0, 300)] + [float(rng.randint(0, 5)) for _ in range(width - 1)]
        data.append(row)
        labels.append((row[0] > 200 and row[3] > 2) or rng.random() < 0.02)
    return data, labels


def test_the_flat_trees_give_lightgbms_own_predictions() -> None:
    data, labels = synthetic(2_000, 1)
    names = tree_input_names(MODEL)
    dataset = lightgbm.Dataset(numpy.asarray(data), numpy.asarray(labels, dtype=float))
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1},
        dataset,
        num_boost_round=40,
    )
    lists = forest_lists(booster.dump_model())
    forest = FlatForest(list(names), *(lists[k] for k in _ORDER))
    probe, _ = synthetic(500, 2)
    raw = booster.predict(numpy.asarray(probe), raw_score=True)
    probability = booster.predict(numpy.asarray(probe))
    for row, expected_raw, expected in zip(probe, raw, probability, strict=True):
        margin, pushes = forest.walk(row)
        assert margin == pytest.approx(expected_raw, abs=1e-9)
        assert forest.margin(row) == margin
        assert logistic(margin) == pytest.approx(expected, abs=1e-12)
        # The pushes add up to the margin less what every tree gives before any split.
        roots = sum(forest.node_value[r] if r >= 0 else forest.leaf_value[~r] for r in forest.roots)
        assert roots + sum(pushes) == pytest.approx(margin, abs=1e-9)


_ORDER = ("feature", "threshold", "left", "right", "node_value", "leaf_value", "roots")


def test_a_trained_tree_model_scores_decision_features_like_lightgbm() -> None:
    data, labels = synthetic(3_000, 3)
    model = fit_trees(data, labels, tree_input_names(MODEL), BATCH_RULES, known_until_ms=5)
    assert (model.labels, model.frauds, model.known_until_ms) == (3_000, sum(labels), 5)
    scorer = tree_scorer(model, MODEL)
    features = {"ml.amount_cents": 25_000, "tx.count.24h": 4, "tx.amount_cents.24h": 30_000}
    score = scorer.score_features(features, MODEL)
    margin = model.forest().margin(tree_input_values(features, MODEL))
    assert score.probability == logistic(margin) and score.ready
    assert 0 < len(score.contributions) <= MODEL.top_features
    assert all(push > 0 for _, push in score.contributions)


def test_the_trees_explain_a_probability_only_when_it_earns_points() -> None:
    """Below a point the reason is not given, so the walk that explains it is skipped; a
    blend that earns points its trees alone did not asks them to explain."""
    data, labels = synthetic(3_000, 3)
    rules = MODEL.model_copy(update={"points": 5})  # a point from a probability of 0.1
    scorer = tree_scorer(fit_trees(data, labels, tree_input_names(MODEL), BATCH_RULES, 5), rules)
    quiet = {"ml.amount_cents": 20_000, "tx.count.24h": 1, "tx.amount_cents.24h": 20_000}
    score = scorer.score_features(quiet, rules)
    assert probability_points_of(score.probability, rules) == 0 and score.contributions == ()
    explained = scorer.explain(quiet, rules)
    assert explained and all(push > 0 for _, push in explained)
    online = _Fixed(0.9, (("amount_log", 1.0),))
    blended = Blend(online, scorer, 0.5).score_features(quiet, rules)
    assert probability_points_of(blended.probability, rules) > 0
    assert blended.contributions == explained
    loud = {"ml.amount_cents": 25_000, "tx.count.24h": 4, "tx.amount_cents.24h": 30_000}
    assert probability_points_of(scorer.score_features(loud, MODEL).probability, MODEL) > 0
    assert scorer.score_features(loud, MODEL).contributions == scorer.explain(loud, MODEL)


def test_a_tree_model_of_other_inputs_is_refused() -> None:
    data, labels = synthetic(300, 4)
    model = fit_trees(data, labels, tree_input_names(MODEL), BATCH_RULES, 0)
    fewer = MODEL.model_copy(update={"user_windows": ("24h",)})
    with pytest.raises(ValueError, match="other inputs"):
        tree_scorer(model, fewer)


def test_batch_snapshots_are_signed_and_of_a_family() -> None:
    data, labels = synthetic(300, 5)
    model = fit_trees(data, labels, tree_input_names(MODEL), BATCH_RULES, 7)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    snapshot = sealed_snapshot(BATCH, "trees-1.1", model, 7, b"key-1", at)
    assert (snapshot.labels, snapshot.events) == (300, 300)
    opened = open_trees(snapshot.blob, snapshot.signature, b"key-1", MODEL.batch.family)
    assert opened == model
    with pytest.raises(ModelError, match="signature"):
        open_trees(snapshot.blob, snapshot.signature, b"key-2", MODEL.batch.family)
    with pytest.raises(ModelError, match="family"):
        open_trees(snapshot.blob, snapshot.signature, b"key-1", "trees-0")


def test_training_rows_wait_for_their_label_and_leave_the_window() -> None:
    rows: dict[str, bytes] = {}
    trainer = BatchTrainer(("a",), rows, training_days=2, retrain_hours=24, legit_sample=1.0)
    trainer.add("early", 0, 7 * DAY_MS, [1.0], True)
    trainer.add("late", DAY_MS, 9 * DAY_MS, [2.0], False)  # its label comes on day 9
    assert not trainer.add("wrong-width", DAY_MS, 2 * DAY_MS, [1.0, 2.0], False)
    assert trainer.next_training_ms == 8 * DAY_MS  # the first boundary after a label
    # On day 8, the window (day 6 on) holds neither transaction: both are dropped...
    assert list(trainer.examples(8 * DAY_MS)) == [] and rows == {}
    # ...and with a wider window, only the label known by then is used.
    trainer = BatchTrainer(("a",), rows, training_days=30, retrain_hours=24, legit_sample=1.0)
    trainer.add("early", 0, 7 * DAY_MS, [1.0], True)
    trainer.add("late", DAY_MS, 9 * DAY_MS, [2.0], False)
    assert list(trainer.examples(8 * DAY_MS)) == [(7 * DAY_MS, True, (1.0,))]
    assert len(list(trainer.examples(9 * DAY_MS))) == 2


def test_training_waits_for_enough_frauds_and_follows_the_schedule() -> None:
    data, labels = synthetic(400, 6)
    trainer = BatchTrainer.of(tree_input_names(MODEL), {}, BATCH_RULES)
    for i, (row, label) in enumerate(zip(data, labels, strict=True)):
        trainer.add(f"e{i}", i * 1000, DAY_MS + i * 1000, row, label)
    assert not trainer.due(DAY_MS + 400_000)
    assert trainer.due(2 * DAY_MS)
    model = trainer.train(2 * DAY_MS, BATCH_RULES)
    assert model is not None and model.labels == 400
    assert model.known_until_ms == DAY_MS + 399_000
    assert trainer.next_training_ms == 3 * DAY_MS and not trainer.due(2 * DAY_MS + 1)
    too_few = BATCH_RULES.model_copy(update={"min_frauds": 10_000})
    assert trainer.train(3 * DAY_MS, too_few) is None


def test_legitimate_examples_are_sampled_the_same_way_every_time() -> None:
    kept = [kept_for_training(f"e{i}", False, 0.25) for i in range(4_000)]
    assert 0.2 < sum(kept) / len(kept) < 0.3
    assert kept == [kept_for_training(f"e{i}", False, 0.25) for i in range(4_000)]
    assert all(kept_for_training(f"e{i}", True, 0.25) for i in range(100))


def test_the_learner_trains_only_on_labels_known_by_then() -> None:
    learner = Learner(MODEL.model_copy(update={"batch": BATCH_RULES}), 30 * DAY_MS, {}, {})
    features = {"ml.amount_cents": 10_000, "tx.count.24h": 1}
    fraud = {"ml.amount_cents": 90_000, "tx.count.24h": 5}
    for i in range(40):
        learner.observe_decision(f"e{i}", i * 60_000, fraud if i % 4 == 0 else features, ())
        # Each label known seven days after its transaction.
        learner.observe_label([f"e{i}"], i % 4 == 0, i * 60_000 + 7 * DAY_MS)
    assert learner.retrain() is None  # event time is still on day 0: nothing learned
    assert learner.batch is not None and len(learner.batch.rows) == 0
    learner.advance(7 * DAY_MS + 20 * 60_000)  # the first 21 labels are known now
    assert len(learner.batch.rows) == 21
    learner.advance(8 * DAY_MS)
    trees = learner.retrain()
    assert trees is not None and trees.labels == 40 and trees.frauds == 10
    assert trees.known_until_ms == 39 * 60_000 + 7 * DAY_MS <= learner.event_time_ms
    assert learner.trees is trees and learner.retrain() is None  # not due again yet
    restored = pickle.loads(pickle.dumps(learner))  # the learner process checkpoints it
    assert restored.batch is not None and restored.batch.next_training_ms == 9 * DAY_MS


def test_known_fraud_features_read_only_labels_known_at_the_event() -> None:
    known = KnownFrauds(horizon_ms=40 * DAY_MS, keep=10)
    t0 = datetime(2018, 7, 1, 12, tzinfo=UTC)
    for n, day in enumerate((0, 3)):
        occurred = t0 + timedelta(days=day)
        fraud = KnownFraud(
            event_id=f"f{n}", occurred_at=occurred, labelled_at=occurred + timedelta(days=7)
        )
        known.add("terminal:t1", fraud)
    windows = RULES.velocity.windows

    def at(days: float) -> dict[str, int]:
        at_ms = int((t0 + timedelta(days=days)).timestamp() * 1000)
        return known.features(["terminal:t1"], at_ms, MODEL, windows)

    first, last = known_fraud_fact("terminal", FIRST_AT), known_fraud_fact("terminal", LAST_AT)
    assert at(6.9)[first] == -1 and at(6.9)["ml.known_frauds.terminal.30d"] == 0
    assert at(7)[first] == at(7)[last] == int(t0.timestamp())  # the first label, at its time
    assert at(10)[last] == int((t0 + timedelta(days=3)).timestamp())
    assert at(10)["ml.known_frauds.terminal.30d"] == 2


def test_model_features_turn_fraud_times_into_ages_in_local_days_and_hours() -> None:
    event = factories.transaction(
        occurred_at=datetime(2018, 7, 10, 2, 30, tzinfo=UTC),  # 23:30 on the 9th in Brasília
        amount_cents=30_000,
    )
    first_at = int(datetime(2018, 7, 1, 4, tzinfo=UTC).timestamp())  # 01:00 on the 1st
    last_at = int(datetime(2018, 7, 9, 20, 30, tzinfo=UTC).timestamp())
    known = {
        known_fraud_fact("terminal", FIRST_AT): first_at,
        known_fraud_fact("terminal", LAST_AT): last_at,
        known_fraud_fact("card", FIRST_AT): -1,
        "ml.known_frauds.terminal.24h": 1,
    }
    features = model_features(event, known, -3, [10_000, 40_000, 20_000])
    assert features["ml.known_frauds.terminal.first_days"] == 8  # the 1st to the 9th, local
    assert features["ml.known_frauds.terminal.last_hours"] == 6
    assert features["ml.known_frauds.card.first_days"] == -1
    assert features["ml.known_frauds.terminal.24h"] == 1
    assert (features["ml.amount_median_cents"], features["ml.amount_max_cents"]) == (
        20_000,
        40_000,
    )
    values = dict(zip(tree_input_names(MODEL), tree_input_values(features, MODEL), strict=True))
    assert values["amount_to_median"] == 1.5 and values["amount_to_max"] == 0.75
    assert values["terminal_first_fraud_days"] == 8
    assert median_of([5]) == 5 and model_features(event, {}, -3, [])["ml.amount_max_cents"] == -1


def test_tree_inputs_are_finite_without_history() -> None:
    values = tree_input_values({}, MODEL)
    assert len(values) == len(tree_input_names(MODEL))
    assert all(math.isfinite(v) for v in values)


class _Fixed:
    def __init__(self, probability: float, contributions: tuple[tuple[str, float], ...]) -> None:
        self.probability, self.contributions = probability, contributions

    def score_features(self, features: dict[str, int], rules: object) -> ModelScore:
        return ModelScore(self.probability, 0.3, 0.5, False, self.contributions)

    def explain(self, features: dict[str, int], rules: object) -> tuple[tuple[str, float], ...]:
        return self.contributions


def test_the_blend_weighs_the_batch_probability_and_names_both_versions() -> None:
    online = LoadedModel("online-3.4", 10, _Fixed(0.2, (("amount_log", 1.0),)))
    batch = LoadedModel("trees-1.2", 20, _Fixed(0.8, (("amount", 2.0),)))
    assert blend(online, None, 0.7) is online and blend(None, batch, 0.7) is batch
    both = blend(online, batch, 0.75)
    assert both is not None and both.version == "online-3.4+trees-1.2"
    assert both.known_until_ms == 20 and isinstance(both.model, Blend)
    score = both.model.score_features({}, MODEL)
    assert score.probability == pytest.approx(0.75 * 0.8 + 0.25 * 0.2)
    assert score.ready and score.anomaly == 0.3 and score.contributions == (("amount", 2.0),)
    assert score.parts == (("online", 0.2), ("batch", 0.8))
