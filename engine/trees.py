"""Gradient-boosted trees as a worker scores with them (pure, compiled with the scoring hot
path): every tree of a trained ensemble laid out in flat lists, walked per event.

The library that trains the trees (LightGBM, in the learner) predicts one row at a time at
tens of microseconds of call overhead; here a prediction is a few list reads per tree. The
numbers are LightGBM's own: a numerical split sends a value left when it is ``<=`` the
threshold, a tree's output is its leaf value, the margin their sum, the probability its
logistic. ``engine.batch.forest_from_dump`` builds the lists from LightGBM's model dump.

>>> forest = FlatForest(
...     ["amount"], [0], [220.0], [-1], [-2], [0.0], [-2.0, 3.0], [0]
... )
>>> forest.margin([100.0]), forest.margin([230.0])
(-2.0, 3.0)
"""

from __future__ import annotations

import math

from config.rules import ModelRules
from engine.model_inputs import (
    ModelScore,
    names_its_inputs,
    top_contributions,
    tree_input_names,
    tree_input_values,
)
from engine.velocity import Features


class FlatForest:
    """Trees in flat lists. Node ``k`` splits input ``feature[k]`` at ``threshold[k]``; its
    children ``left[k]`` / ``right[k]`` are node indexes, or ``~leaf`` (negative) for a leaf.
    ``roots`` holds each tree's first node (``~leaf`` for a tree that is one leaf).
    ``node_value`` is each node's own output (LightGBM's internal value): the path's steps
    between them say how much each input moved the margin (``contributions``)."""

    def __init__(
        self,
        names: list[str],
        feature: list[int],
        threshold: list[float],
        left: list[int],
        right: list[int],
        node_value: list[float],
        leaf_value: list[float],
        roots: list[int],
    ) -> None:
        self.names = names
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.node_value = node_value
        self.leaf_value = leaf_value
        self.roots = roots

    def margin(self, values: list[float]) -> float:
        """The ensemble's raw output (log-odds) for one row of inputs, by position."""
        feature, threshold, left, right = self.feature, self.threshold, self.left, self.right
        total = 0.0
        for root in self.roots:
            node = root
            while node >= 0:
                node = left[node] if values[feature[node]] <= threshold[node] else right[node]
            total += self.leaf_value[~node]
        return total

    def walk(self, values: list[float]) -> tuple[float, list[float]]:
        """The margin, and how much each input moved it along the paths taken (Saabas):
        every split adds the step from its node's value to its child's to the input it
        split on. The pushes add up to the margin less the trees' root values."""
        feature, threshold, left, right = self.feature, self.threshold, self.left, self.right
        node_value, leaf_value = self.node_value, self.leaf_value
        pushes = [0.0] * len(self.names)
        margin = 0.0
        for root in self.roots:
            node = root
            while node >= 0:
                position = feature[node]
                child = left[node] if values[position] <= threshold[node] else right[node]
                after = node_value[child] if child >= 0 else leaf_value[~child]
                pushes[position] += after - node_value[node]
                node = child
            margin += leaf_value[~node]
        return margin, pushes


def logistic(margin: float) -> float:
    """LightGBM's binary link (sigmoid 1), safe for any margin."""
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    odds = math.exp(margin)
    return odds / (1.0 + odds)


class TreeScorer:
    """What a worker scores with: a batch snapshot's trees, over a decision's features
    (``tree_input_values``, by position: the snapshot's family promises the inputs). Its
    score is ready by construction (a batch model is trained only with enough frauds); the
    anomaly is the online model's business. Built with the ``ModelRules`` whose inputs the
    trees learned."""

    def __init__(self, forest: FlatForest, rules: ModelRules) -> None:
        if tuple(forest.names) != tree_input_names(rules):
            raise ValueError("the trees learned other inputs than these rules give")
        self.forest = forest
        self.top_features = rules.top_features

    def score_features(self, features: Features, rules: ModelRules) -> ModelScore:
        """The probability from the trees' margin alone; the walk that explains it (twice
        the work) only when the probability earns points, the one case a reason names the
        inputs (``explain`` for a blend whose own probability does)."""
        values = tree_input_values(features, rules)
        probability = logistic(self.forest.margin(values))
        shown = names_its_inputs(probability, 0.0, None, True, rules)
        contributions = self._contributions(values) if shown else ()
        return ModelScore(probability, 0.0, None, True, contributions)

    def explain(self, features: Features, rules: ModelRules) -> tuple[tuple[str, float], ...]:
        return self._contributions(tree_input_values(features, rules))

    def _contributions(self, values: list[float]) -> tuple[tuple[str, float], ...]:
        _, pushes = self.forest.walk(values)
        names = self.forest.names
        return top_contributions(
            ((names[k], push) for k, push in enumerate(pushes) if push > 0), self.top_features
        )
