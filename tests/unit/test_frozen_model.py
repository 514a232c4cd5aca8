"""A worker's frozen snapshot scores exactly as the river model it was read from."""

from __future__ import annotations

import math
import random

import pytest

from config.rules import ModelRules, load_rules
from engine.frozen_model import FrozenModel, raw_cut
from engine.learning import OnlineModel
from engine.model_inputs import ModelScore, model_input_names, model_inputs, names_its_inputs
from engine.velocity import Features

RULES = load_rules()


def model_rules(**changes: object) -> ModelRules:
    return RULES.model.model_copy(
        update={"min_labels": 20, "min_frauds": 2, "anomaly_window": 50, **changes}
    )


def transaction_inputs(rng: random.Random, rules: ModelRules) -> dict[str, float]:
    return model_inputs(transaction_features(rng), rules)


def transaction_features(rng: random.Random) -> Features:
    """A plausible transaction's features for the model (amounts, counts, known frauds)."""
    count = rng.randint(0, 40)
    return {
        "ml.amount_cents": rng.choice([0, 100, 5_000, 12_345, 100_000, rng.randint(1, 10**7)]),
        "ml.hour": rng.randint(0, 23),
        "ml.weekend": rng.randint(0, 1),
        "tx.count.24h": count,
        "tx.amount_cents.24h": count * rng.randint(100, 50_000),
        "tx.count.30d": count * 3,
        "tx.amount_cents.30d": count * 3 * rng.randint(100, 50_000),
        "ml.known_frauds.terminal.7d": rng.choice([0, 0, 0, 1, 4]),
        "tx.seconds_since_previous": rng.choice([-1, 0, 30, 86_400]),
        "tx.new_device": rng.randint(0, 1),
    }


def trained(rules: ModelRules, events: int, labels: int, seed: int = 3) -> OnlineModel:
    rng = random.Random(seed)
    model = OnlineModel(rules)
    for n in range(events):
        inputs = transaction_inputs(rng, rules)
        model.learn_event(inputs)
        if n < labels:
            model.learn_label(inputs, is_fraud=inputs["amount_log"] > 8 or rng.random() < 0.05)
    return model


def assert_scores_alike(model: OnlineModel, inputs: list[dict[str, float]]) -> None:
    frozen = FrozenModel(model)
    for one in inputs:
        assert frozen.score(one) == model.score(one)  # every field, to the last bit


def assert_features_score_alike(model: OnlineModel, rules: ModelRules, seed: int) -> None:
    """A worker scores a decision's features by position: the same as river by name. It
    works out the inputs that pushed most only when a reason will name them, the same."""
    frozen, rng = FrozenModel(model), random.Random(seed)
    for _ in range(300):
        features = transaction_features(rng)
        score, river = (
            frozen.score_features(features, rules),
            model.score(model_inputs(features, rules)),
        )
        assert _without_contributions(score) == _without_contributions(river)  # to the last bit
        shown = names_its_inputs(
            river.probability, river.anomaly, river.anomaly_cut, river.ready, rules
        )
        assert score.contributions == (river.contributions if shown else ())
        assert frozen.explain(features, rules) == river.contributions


def _without_contributions(score: ModelScore) -> tuple[object, ...]:
    return (score.probability, score.anomaly, score.anomaly_cut, score.ready, score.parts)


@pytest.mark.parametrize(
    ("events", "labels"),
    [
        (0, 0),  # nothing learned: probability 0.5, no anomaly score
        (30, 0),  # inside the trees' first window: no anomaly score yet
        (400, 0),  # anomalies scored, no labels
        (400, 10),  # labels, not ready
        (600, 600),  # ready
    ],
)
def test_a_frozen_snapshot_scores_exactly_as_the_river_model(events: int, labels: int) -> None:
    rules = model_rules()
    model = trained(rules, events, labels)
    rng = random.Random(9)
    assert_scores_alike(model, [transaction_inputs(rng, rules) for _ in range(500)])
    assert_features_score_alike(model, rules, seed=events + labels)


def test_rules_naming_other_inputs_than_the_snapshot_are_scored_by_name() -> None:
    rules = model_rules()
    model = trained(rules, 600, 600)
    assert_features_score_alike(model, rules.model_copy(update={"amount_band_octaves": 10}), 1)
    assert_features_score_alike(model, rules.model_copy(update={"user_windows": ("7d",)}), 2)
    assert_features_score_alike(model, rules.model_copy(update={"night_until_hour": 2}), 3)


def test_unseen_and_missing_inputs_score_as_river_scores_them() -> None:
    rules = model_rules()
    model = trained(rules, 600, 600)
    rng = random.Random(5)
    odd = []
    for _ in range(300):
        inputs = transaction_inputs(rng, rules)
        for name in rng.sample(sorted(inputs), 8):
            del inputs[name]  # a tree asks for it: river takes its busier side
        inputs["never_learned"] = rng.uniform(-5, 5)
        inputs["amount_log"] = rng.choice([-3.0, 0.0, 40.0, inputs.get("amount_log", 1.0)])
        odd.append(inputs)
    assert_scores_alike(model, odd)


def test_contributions_name_the_largest_pushes() -> None:
    rules = model_rules(top_features=2)
    model = trained(rules, 600, 600)
    score = FrozenModel(model).score(transaction_inputs(random.Random(1), rules))
    assert len(score.contributions) <= 2
    assert [push for _, push in score.contributions] == sorted(
        (push for _, push in score.contributions), reverse=True
    )
    assert all(push > 0 for _, push in score.contributions)


def test_the_frozen_snapshot_does_not_follow_the_model_learning_later() -> None:
    rules = model_rules()
    model = trained(rules, 600, 600)
    inputs = transaction_inputs(random.Random(2), rules)
    frozen = FrozenModel(model)
    before = frozen.score(inputs)
    for _ in range(50):
        model.learn_label(inputs, is_fraud=True)
    assert model.score(inputs) != before
    assert frozen.score(inputs) == before


def neighbours(value: float, steps: int) -> list[float]:
    below, above, found = value, value, [value]
    for _ in range(steps):
        below, above = math.nextafter(below, -math.inf), math.nextafter(above, math.inf)
        found += [below, above]
    return found


@pytest.mark.parametrize("seed", range(5))
def test_the_raw_cut_splits_inputs_exactly_where_the_scaled_threshold_does(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        low = rng.choice([0.0, -1.0, rng.uniform(-1e6, 1e6), rng.uniform(0, 1e-3)])
        span = rng.choice([1.0, 3.0, rng.uniform(1e-9, 1e9), 0.1])
        threshold = rng.uniform(0.15, 0.85)
        cut = raw_cut(low, span, threshold)
        assert (cut - low) / span >= threshold > (math.nextafter(cut, -math.inf) - low) / span
        for value in [*neighbours(cut, 4), low, low + span, rng.uniform(low, low + span)]:
            assert (value < cut) == ((value - low) / span < threshold)


def test_a_constant_or_unlearned_input_goes_the_way_river_sends_it() -> None:
    assert raw_cut(2.0, 0.0, 0.5) == math.inf  # a zero span scales to 0.0: below any threshold
    unseen = raw_cut(math.inf, -math.inf - math.inf, 0.5)  # river scales it to NaN
    assert not any(value < unseen for value in (-1e300, 0.0, 1e300))
    with pytest.raises(ValueError, match="wrong order"):
        raw_cut(1.0, -1.0, 0.5)


def test_an_input_exactly_at_a_split_goes_the_way_river_sends_it() -> None:
    rules = model_rules()
    model = trained(rules, 600, 600)
    minmax, trees = model.unsupervised.steps.values()
    rng = random.Random(4)
    at_splits = []
    for root in trees.trees:
        for node in root.iter_dfs():
            if not hasattr(node, "feature"):
                continue  # a leaf
            low, high = minmax.min[node.feature].get(), minmax.max[node.feature].get()
            if high > low:  # else every finite input takes one side, whatever its value
                inputs = transaction_inputs(rng, rules)
                inputs[node.feature] = raw_cut(low, high - low, node.threshold)
                at_splits.append(inputs)
    assert len(at_splits) >= 100
    assert_scores_alike(model, at_splits)
    frozen, names = FrozenModel(model), model_input_names(rules)
    for inputs in at_splits:
        by_position = [inputs[name] for name in names]
        assert frozen._anomaly(by_position, frozenset()) == model.score(inputs).anomaly
