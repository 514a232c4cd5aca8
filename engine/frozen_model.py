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

from engine.learning import OnlineModel
from engine.model_inputs import ModelScore, top_contributions

_UNLEARNED = (0.0, 0.0, 0.0)
"""(mean, deviation, weight) of a name the supervised model never learned: scaled to 0."""
Node = tuple[Any, ...]
"""A branch ``(r_mass, feature, cut, left, right, taken_when_missing)`` or a leaf
``(r_mass,)``."""


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


def _frozen_tree(node: Any, height: int, bounds: dict[str, tuple[float, float]]) -> Node:
    if height == 0:
        return (node.r_mass,)
    left, right = node.children
    missing = 1 if left.l_mass < right.l_mass else 0  # river's rule for a missing input
    low, high = bounds.get(node.feature, (math.inf, -math.inf))  # river's for an unseen name
    return (
        node.r_mass,
        node.feature,
        raw_cut(low, high - low, node.threshold),
        _frozen_tree(left, height - 1, bounds),
        _frozen_tree(right, height - 1, bounds),
        missing,
    )


class FrozenModel:
    """What a worker scores with: an ``OnlineModel`` as it was when snapshotted."""

    def __init__(self, model: OnlineModel) -> None:
        self.ready = model.ready
        self.anomaly_cut = model.anomaly_cut
        self.top_features = model.rules.top_features
        scaler, regression = model.supervised.steps.values()
        self._intercept: float = regression.intercept
        self._link = regression.loss.mean_func  # the logistic function, as river clamps it
        weights = regression.weights
        self._standard = {
            name: (scaler.means[name], variance**0.5 if variance else 0.0, weights.get(name, 0.0))
            for name, variance in scaler.vars.items()
        }
        minmax, trees = model.unsupervised.steps.values()
        bounds = {name: (low.get(), minmax.max[name].get()) for name, low in minmax.min.items()}
        scores_anomalies = model.events > 0 and not trees._first_window
        self._height = trees.height
        self._size_limit = 0.1 * trees.window_size
        self._max_score = trees._max_score
        self._trees = (
            [_frozen_tree(t, trees.height, bounds) for t in trees.trees] if scores_anomalies else []
        )

    def score(self, inputs: dict[str, float]) -> ModelScore:
        standard = self._standard
        logit = 0.0
        pushes: list[tuple[str, float]] = []
        for name, value in inputs.items():
            mean, deviation, weight = standard.get(name, _UNLEARNED)
            push = weight * ((value - mean) / deviation if deviation else 0.0)
            logit += push  # river's dot product adds in the inputs' order too
            if push > 0:
                pushes.append((name, push))
        probability = float(self._link(logit + self._intercept))
        anomaly_score = self._anomaly(inputs) if self._trees else 0.0
        contributions = top_contributions(pushes, self.top_features)
        return ModelScore(probability, anomaly_score, self.anomaly_cut, self.ready, contributions)

    def _anomaly(self, inputs: dict[str, float]) -> float:
        """River's ``HalfSpaceTrees.score_one`` on the min-max scaled inputs."""
        height, size_limit = self._height, self._size_limit
        total = 0.0
        for root in self._trees:
            node, depth_pow, score = root, 1, 0.0
            for _ in range(height):
                mass = node[0]
                score += mass * depth_pow
                if mass < size_limit:
                    break
                value = inputs.get(node[1])
                if value is None:
                    node = node[3 + node[5]]
                else:
                    node = node[3] if value < node[2] else node[4]
                depth_pow <<= 1
            else:
                score += node[0] * depth_pow
            total += score
        return float(1 - total / self._max_score)
