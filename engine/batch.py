"""The batch model (no I/O, no clock): gradient-boosted trees retrained on a schedule from the
labelled transactions, beside the online model (``engine.learning``).

The learner hands every label it learns, once the stream's event time has reached its
``labelled_at``, to a ``BatchTrainer`` with the transaction's tree inputs
(``engine.model_inputs.tree_input_values``, rebuilt from the published decision like the
online model's). When event time crosses a multiple of ``retrain_hours`` the trainer fits
LightGBM on the transactions of the last ``training_days`` whose label is known by then, and
the trees become a ``TreeModel``: plain lists, signed and published as a snapshot, that a
worker walks with ``engine.trees.FlatForest`` (no LightGBM call per event). A snapshot knows
labels up to its ``known_until``; workers score an event only with a snapshot that knew
nothing later than the event (``engine.learning.ModelShelf``).

>>> rows = {}
>>> trainer = BatchTrainer(("amount",), rows, training_days=28, retrain_hours=24,
...                        legit_sample=1.0)
>>> trainer.add("e1", occurred_ms=0, labelled_ms=7 * 86_400_000, values=[10.0], is_fraud=True)
True
>>> trainer.due(7 * 86_400_000), trainer.due(8 * 86_400_000)
(False, True)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from config.rules import BatchRules
from engine.trees import FlatForest

DAY_MS = 86_400_000
_HEAD = struct.Struct("<qq?")


@dataclass(frozen=True)
class TreeModel:
    """A trained ensemble as plain data (what a snapshot carries): the lists of
    ``engine.trees.FlatForest`` and what it learned from."""

    family: str
    names: tuple[str, ...]
    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    node_value: list[float]
    leaf_value: list[float]
    roots: list[int]
    labels: int
    frauds: int
    events: int
    """Examples it was fitted on (legitimate ones sampled)."""
    known_until_ms: int
    """The latest ``labelled_at`` among its examples."""

    def forest(self) -> FlatForest:
        """The trees as a worker walks them."""
        return FlatForest(
            list(self.names),
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.node_value,
            self.leaf_value,
            self.roots,
        )


def forest_lists(dump: dict[str, Any]) -> dict[str, list[Any]]:
    """LightGBM's ``Booster.dump_model()`` as the flat lists of ``engine.trees.FlatForest``.
    Only numerical ``<=`` splits are accepted (the inputs are numbers, never missing)."""
    lists: dict[str, list[Any]] = {
        "feature": [],
        "threshold": [],
        "left": [],
        "right": [],
        "node_value": [],
        "leaf_value": [],
        "roots": [],
    }

    def place(node: dict[str, Any]) -> int:
        if "leaf_value" in node:
            lists["leaf_value"].append(float(node["leaf_value"]))
            return ~(len(lists["leaf_value"]) - 1)
        if node.get("decision_type") != "<=":
            raise ValueError(f"unsupported split {node.get('decision_type')!r}")
        index = len(lists["feature"])
        lists["feature"].append(int(node["split_feature"]))
        lists["threshold"].append(float(node["threshold"]))
        lists["node_value"].append(float(node["internal_value"]))
        lists["left"].append(0)
        lists["right"].append(0)
        lists["left"][index] = place(node["left_child"])
        lists["right"][index] = place(node["right_child"])
        return index

    for tree in dump["tree_info"]:
        lists["roots"].append(place(tree["tree_structure"]))
    return lists


def fit_trees(
    rows: Sequence[Sequence[float]],
    labels: Sequence[bool],
    names: tuple[str, ...],
    rules: BatchRules,
    known_until_ms: int,
) -> TreeModel:
    """LightGBM's binary gradient boosting on ``rows``, as a ``TreeModel``. LightGBM is
    imported here only: workers never need it."""
    import lightgbm
    import numpy

    data = numpy.asarray(rows, dtype=numpy.float64)
    dataset = lightgbm.Dataset(
        data,
        numpy.asarray(labels, dtype=numpy.float64),
        feature_name=list(names),
        params={
            "max_bin": rules.max_bins,
            "min_data_in_bin": 1,
            "bin_construct_sample_cnt": max(len(rows), 1),
            "verbose": -1,
        },
    )
    booster = lightgbm.train(
        {
            "objective": "binary",
            "learning_rate": rules.learning_rate,
            "num_leaves": rules.leaves,
            "min_data_in_leaf": rules.min_leaf,
            "num_threads": rules.threads,
            "seed": rules.seed,
            "deterministic": True,
            "verbose": -1,
        },
        dataset,
        num_boost_round=rules.rounds,
    )
    lists = forest_lists(booster.dump_model())
    return TreeModel(
        family=rules.family,
        names=names,
        feature=lists["feature"],
        threshold=lists["threshold"],
        left=lists["left"],
        right=lists["right"],
        node_value=lists["node_value"],
        leaf_value=lists["leaf_value"],
        roots=lists["roots"],
        labels=len(labels),
        frauds=sum(1 for y in labels if y),
        events=len(rows),
        known_until_ms=known_until_ms,
    )


def kept_for_training(event_id: str, is_fraud: bool, legit_sample: float) -> bool:
    """Every fraud, and the same ``legit_sample`` share of legitimate transactions on every
    run (by a hash of the event id, not a random draw)."""
    if is_fraud or legit_sample >= 1.0:
        return True
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < legit_sample * 2**64


@cache
def _inputs(width: int) -> struct.Struct:
    """A row's inputs, packed (the trainer itself is pickled with the learner)."""
    return struct.Struct(f"<{width}d")


def _row_key(occurred_ms: int, event_id: str) -> str:
    return f"{occurred_ms:015d}:{event_id}"


class BatchTrainer:
    """The labelled examples of the training window and the training schedule. ``rows`` is
    any mapping from a key that sorts by occurrence to the packed example: a dict in a
    replay, RocksDB in the learner process."""

    def __init__(
        self,
        names: tuple[str, ...],
        rows: MutableMapping[str, bytes],
        training_days: int,
        retrain_hours: int,
        legit_sample: float,
    ) -> None:
        self.names, self.rows = names, rows
        self.training_ms = training_days * DAY_MS
        self.period_ms = retrain_hours * 3_600_000
        self.legit_sample = legit_sample
        self.next_training_ms: int | None = None
        """When the next training is due (event time); None until a label came."""
        self.trainings = 0

    @classmethod
    def of(
        cls, names: tuple[str, ...], rows: MutableMapping[str, bytes], rules: BatchRules
    ) -> BatchTrainer:
        return cls(names, rows, rules.training_days, rules.retrain_hours, rules.legit_sample)

    def add(
        self,
        event_id: str,
        occurred_ms: int,
        labelled_ms: int,
        values: Sequence[float],
        is_fraud: bool,
    ) -> bool:
        """Keep a learned label's example (False: sampled out, or inputs of another shape)."""
        if len(values) != len(self.names) or not kept_for_training(
            event_id, is_fraud, self.legit_sample
        ):
            return False
        row = _HEAD.pack(occurred_ms, labelled_ms, is_fraud) + _inputs(len(values)).pack(*values)
        self.rows[_row_key(occurred_ms, event_id)] = row
        if self.next_training_ms is None:
            self.next_training_ms = (labelled_ms // self.period_ms + 1) * self.period_ms
        return True

    def due(self, event_time_ms: int) -> bool:
        return self.next_training_ms is not None and event_time_ms >= self.next_training_ms

    def examples(self, event_time_ms: int) -> Iterator[tuple[int, bool, tuple[float, ...]]]:
        """(labelled_ms, is_fraud, inputs) of the examples in the training window that ends
        at ``event_time_ms`` whose label was known by then; older ones are dropped."""
        oldest = _row_key(event_time_ms - self.training_ms, "")
        inputs = _inputs(len(self.names))
        stale = []
        for key in self.rows:
            if key < oldest:
                stale.append(key)
                continue
            row = self.rows[key]
            _, labelled_ms, is_fraud = _HEAD.unpack_from(row)
            if labelled_ms <= event_time_ms:
                yield labelled_ms, is_fraud, inputs.unpack_from(row, _HEAD.size)
        for key in stale:
            del self.rows[key]

    def train(self, event_time_ms: int, rules: BatchRules) -> TreeModel | None:
        """Fit the trees on the window's examples (None: fewer than ``min_frauds`` frauds)
        and schedule the next training."""
        self.next_training_ms = (event_time_ms // self.period_ms + 1) * self.period_ms
        inputs: list[tuple[float, ...]] = []
        labels: list[bool] = []
        known_until = 0
        for labelled_ms, is_fraud, values in self.examples(event_time_ms):
            inputs.append(values)
            labels.append(is_fraud)
            known_until = max(known_until, labelled_ms)
        if sum(labels) < rules.min_frauds:
            return None
        self.trainings += 1
        return fit_trees(inputs, labels, self.names, rules, known_until)
