"""A model snapshot read once for scoring: the same numbers as ``OnlineModel.score``, cheaper.

A worker never teaches the snapshots it loads (the learner does, and a replay scores with
the ``OnlineModel`` it teaches), yet river reads everything afresh on each call: the weights
copied into a new dict, both scalers' statistics read through objects, every input min-max
scaled for the Half-Space Trees, which then walk node objects. Here the statistics and
weights are read once when the snapshot is loaded, and the trees become nested tuples whose
thresholds are moved back to the inputs' own scale, exactly (``raw_cut``). Everything else
is river's arithmetic in river's order, so scores are identical to the last bit for finite
inputs (the tests compare them, unseen and missing names included). In process it halves
the model's cost per event (``bench.scorer`` reports both).
"""

from __future__ import annotations

import math
from typing import Any

from config.rules import ModelRules
from engine.learning import OnlineModel
from engine.model_inputs import (
    ModelScore,
    model_input_names,
    model_input_values,
    model_inputs,
    names_its_inputs,
    top_contributions,
)
from engine.velocity import Features

_NONE_MISSING: frozenset[int] = frozenset()
_UNLEARNED = (0.0, 0.0, 0.0)
"""(mean, deviation, weight) of a name the supervised model never learned: scaled to 0."""


def _push(standard: tuple[float, float, float], value: float) -> float:
    """An input's term of the logit: its weight times its standardised value, as river's
    scaler and regression compute it (0 for an input of no spread)."""
    mean, deviation, weight = standard
    return weight * ((value - mean) / deviation if deviation else 0.0)


def raw_cut(low: float, span: float, threshold: float) -> float:
    """The least input value that river's min-max scaling, ``(value - low) / span``, puts at
    or above ``threshold``: a finite input goes left exactly when it is below this cut.
    Scaling by a positive span is monotonic in floating point too, so the cut is exact; it is
    found one representable number at a time from its real-number estimate. A zero span
    scales everything to 0, and a name the scaler never learned (infinite bounds) to NaN,
    which always goes right."""
    if not span:
        return math.inf if threshold > 0.0 else -math.inf
    if not math.isfinite(low) or not math.isfinite(span):
        return -math.inf
    if span < 0:
        raise ValueError(f"min-max bounds in the wrong order (span {span})")

    def below(value: float) -> bool:
        return (value - low) / span < threshold

    cut = low + threshold * span
    while below(cut):
        cut = math.nextafter(cut, math.inf)
    while not below(lower := math.nextafter(cut, -math.inf)):
        cut = lower
    return cut


class Node:
    """A node of a frozen Half-Space Tree; a leaf has no children."""

    def __init__(
        self,
        r_mass: float,
        feature: str,
        position: int,
        cut: float,
        children: tuple[Node, Node] | None,
        missing_goes_right: bool,
    ) -> None:
        self.r_mass = r_mass
        self.feature = feature
        self.position = position
        """The feature's position in ``model_input_names``; a name not among them (a
        model that learned other inputs) is given one after them."""
        self.cut = cut
        self.left, self.right = children or (self, self)
        self.missing_goes_right = missing_goes_right


def _frozen_tree(
    node: Any, height: int, bounds: dict[str, tuple[float, float]], positions: dict[str, int]
) -> Node:
    # Masses are counts: as floats they are exact, and so are their products with 2**depth.
    if height == 0:
        return Node(float(node.r_mass), "", -1, 0.0, None, False)
    left, right = node.children
    low, high = bounds.get(node.feature, (math.inf, -math.inf))  # river's for an unseen name
    return Node(
        float(node.r_mass),
        node.feature,
        positions.setdefault(node.feature, len(positions)),
        raw_cut(low, high - low, node.threshold),
        (
            _frozen_tree(left, height - 1, bounds, positions),
            _frozen_tree(right, height - 1, bounds, positions),
        ),
        left.l_mass < right.l_mass,  # river's rule for a missing input
    )


class FrozenModel:
    """What a worker scores with: an ``OnlineModel`` as it was when snapshotted. A decision's
    features are scored by position (``model_input_values``): the statistics and weights
    are laid out in the order of the snapshot's own ``model_input_names``."""

    def __init__(self, model: OnlineModel) -> None:
        self.ready = model.ready
        self.anomaly_cut = model.anomaly_cut
        self.top_features = model.rules.top_features
        scaler, regression = model.supervised.steps.values()
        self._intercept: float = regression.intercept
        self._link = regression.loss.mean_func  # the logistic function, as river clamps it
        weights = regression.weights
        self._standard: dict[str, tuple[float, float, float]] = {
            name: (
                float(scaler.means[name]),
                variance**0.5 if variance else 0.0,
                float(weights.get(name, 0.0)),
            )
            for name, variance in scaler.vars.items()
        }
        self._rules = model.rules
        self._names = model_input_names(model.rules)
        self._by_position: list[tuple[float, float, float]] = [
            self._standard.get(name, _UNLEARNED) for name in self._names
        ]
        positions = {name: k for k, name in enumerate(self._names)}
        minmax, trees = model.unsupervised.steps.values()
        bounds = {name: (low.get(), minmax.max[name].get()) for name, low in minmax.min.items()}
        scores_anomalies = model.events > 0 and not trees._first_window
        self._height: int = trees.height
        self._size_limit: float = 0.1 * trees.window_size
        self._max_score = float(trees._max_score)  # exact: a sum of counts times powers of 2
        self._trees = (
            [_frozen_tree(t, trees.height, bounds, positions) for t in trees.trees]
            if scores_anomalies
            else []
        )
        self._tree_names = tuple(positions)  # the inputs' names, then any other the trees read

    def explain(self, features: Features, rules: ModelRules) -> tuple[tuple[str, float], ...]:
        if not self._by_position_for(rules):
            return self.score(model_inputs(features, rules)).contributions
        return self._contributions(model_input_values(features, rules))

    def score_features(self, features: Features, rules: ModelRules) -> ModelScore:
        """The score of a decision's features, read by position when ``rules`` name the
        same inputs as the snapshot's (the model family promises it), else by name."""
        if not self._by_position_for(rules):
            return self.score(model_inputs(features, rules))
        values = model_input_values(features, rules)
        by_position = self._by_position
        logit = 0.0
        for k in range(len(values)):
            logit += _push(by_position[k], values[k])  # in river's order: the inputs' own
        probability = float(self._link(logit + self._intercept))
        anomaly_score = self._anomaly(values, _NONE_MISSING) if self._trees else 0.0
        cut, ready = self.anomaly_cut, self.ready
        shown = names_its_inputs(probability, anomaly_score, cut, ready, rules)
        contributions = self._contributions(values) if shown else ()
        return ModelScore(probability, anomaly_score, cut, ready, contributions)

    def _by_position_for(self, rules: ModelRules) -> bool:
        """Whether ``rules`` name the snapshot's inputs, so that values read by position fit
        (checked once per rules object)."""
        if rules is not self._rules:
            if model_input_names(rules) != self._names:
                return False
            self._rules = rules  # the same inputs: positions hold
        return True

    def _contributions(self, values: list[float]) -> tuple[tuple[str, float], ...]:
        """The inputs that pushed the probability up most: the logit's own terms."""
        names, by_position = self._names, self._by_position
        pushes: list[tuple[str, float]] = []
        for k in range(len(values)):
            push = _push(by_position[k], values[k])
            if push > 0:
                pushes.append((names[k], push))
        return top_contributions(pushes, self.top_features)

    def score(self, inputs: dict[str, float]) -> ModelScore:
        """The score of inputs by name, as river's ``OnlineModel.score``."""
        standard = self._standard
        logit = 0.0
        pushes: list[tuple[str, float]] = []
        for name, value in inputs.items():
            push = _push(standard.get(name, _UNLEARNED), value)
            logit += push  # river's dot product adds in the inputs' order too
            if push > 0:
                pushes.append((name, push))
        probability = float(self._link(logit + self._intercept))
        anomaly_score = self._anomaly_by_name(inputs) if self._trees else 0.0
        contributions = top_contributions(pushes, self.top_features)
        return ModelScore(probability, anomaly_score, self.anomaly_cut, self.ready, contributions)

    def _anomaly_by_name(self, inputs: dict[str, float]) -> float:
        names = self._tree_names
        values = [inputs.get(name, 0.0) for name in names]
        return self._anomaly(values, frozenset(k for k, n in enumerate(names) if n not in inputs))

    def _anomaly(self, values: list[float], missing: frozenset[int]) -> float:
        """River's ``HalfSpaceTrees.score_one`` on the min-max scaled inputs, given by
        position; past the end of ``values`` or in ``missing``, an input is missing."""
        height, size_limit = self._height, self._size_limit
        given = len(values)
        total = 0.0
        for root in self._trees:
            node, depth_pow, score = root, 1, 0.0
            for _ in range(height):
                mass = node.r_mass
                score += mass * depth_pow
                if mass < size_limit:
                    break
                position = node.position
                if position >= given or (missing and position in missing):
                    node = node.right if node.missing_goes_right else node.left
                else:
                    node = node.left if values[position] < node.cut else node.right
                depth_pow <<= 1
            else:
                score += node.r_mass * depth_pow
            total += score
        return float(1 - total / self._max_score)
