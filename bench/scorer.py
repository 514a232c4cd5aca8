"""The scoring agent's own work per record, without broker or Faust: events/s.

The pipeline benchmark measures everything at once (broker, Faust, producers, our code) on
shared cores. This one runs the agent's per-record code (``agents.scoring.Scorer``: decode
and admit, decide, encode the outputs, count for the entities, serialise the states) on the
same handbook + GiftPix records, in batches as the agent takes them, with a dictionary in
place of the RocksDB table; what it re-routes comes back in the next batch, as through the
broker. One worker owns every partition, as in the pipeline benchmark. It says how much of
a worker's time is ours, and moves only when our code does. Runs with the online model off
(rules only), on with no snapshot loaded (model features and known frauds only, as on a fresh
deployment), and on with a snapshot of a model that learned these events (every
transaction, and the handbook's labels), scored as a worker scores it
(``engine.frozen_model.FrozenModel``) and, for comparison, by river's model itself; and
with that snapshot plus a batch model (``engine.batch``: gradient-boosted trees fitted on
the same transactions with the shipped settings) blended in, as a worker scores both. Also
says how many bytes of state a worker writes per event (to RocksDB and the changelog).

    .venv/bin/python -m bench.scorer [--transactions 20000] [--gifts 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from agents.scoring import Scorer, SharedViews
from atalaia.demo import event_record
from atalaia.sample import (
    generated_gifts,
    handbook_frauds,
    interleave,
    read_handbook,
    synthetic_transactions_until,
)
from bench.results import record_result
from config.rules import RuleSet, load_rules
from config.settings import load_settings
from engine.batch import TreeModel, fit_trees
from engine.frozen_model import FrozenModel
from engine.learning import BATCH, CHAMPION, LoadedModel, OnlineModel, ScoresFeatures, tree_scorer
from engine.model_inputs import (
    is_model_scored,
    model_inputs,
    tree_input_names,
    tree_input_values,
)
from schemas.codec import WireCodec
from schemas.models import Decision
from streams.partitioning import owner_partition
from streams.topics import Topics

PARTITIONS = 4


class _Message:
    """The fields of a consumed record the agent reads."""

    def __init__(self, topic: str, key: bytes, value: bytes, timestamp: float) -> None:
        self.topic, self.key, self.value, self.timestamp = topic, key, value, timestamp
        self.partition = owner_partition(key, PARTITIONS)
        self.offset = 0


class _Record:
    def __init__(self, message: _Message) -> None:
        self.message = message


def _records(transactions: int, gifts: int, topics: Topics) -> list[_Record]:
    settings = load_settings()
    now = datetime.now(UTC).replace(microsecond=0)
    tx = (
        read_handbook(settings.handbook_path, transactions)
        if settings.handbook_path.is_file()
        else synthetic_transactions_until(transactions, now)
    )
    gift_events = generated_gifts(gifts, now - timedelta(seconds=60 * gifts))
    codec, received = WireCodec(), time.time()
    records = []
    for event in interleave(tx, gift_events):
        out = event_record(codec, topics, event)
        assert out.key is not None  # keyed by subject
        records.append(_Record(_Message(out.topic, out.key, out.value, received)))
    return records


class Run(NamedTuple):
    events_per_s: float
    state_bytes_per_event: float
    """Bytes of state written (to the store and its changelog) per input event."""
    state_records_per_event: float
    """State parts written (each a store write and a changelog record) per input event."""


def run(
    rules: RuleSet,
    records: list[_Record],
    topics: Topics,
    batch_size: int,
    model: ScoresFeatures | None = None,
    decisions: list[bytes] | None = None,
    trees: ScoresFeatures | None = None,
) -> Run:
    """Input events/s through a fresh scorer (states start empty, as on a new deployment),
    scoring with ``model`` (and the batch model ``trees``) if given; the decisions it
    publishes go to ``decisions``."""
    settings = load_settings()
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    views = SharedViews.starting(rules, hash_key)
    if model is not None:
        views.models[CHAMPION].add(LoadedModel("bench", 0, model))
    if trees is not None:
        views.models[BATCH].add(LoadedModel("bench-trees", 0, trees))
    table: dict[bytes, bytes] = {}
    clock = lambda: datetime.now(UTC)  # noqa: E731
    cache_keys = settings.state_cache_keys
    scorer = Scorer(
        topics, WireCodec(), clock, PARTITIONS, table, views, hash_key, None, cache_keys
    )
    owned = frozenset(range(PARTITIONS))
    started = time.perf_counter()
    state_bytes = state_records = 0
    rerouted: list[_Record] = []
    for first in range(0, len(records) + batch_size, batch_size):
        batch = scorer.begin(owned)
        for record in [*rerouted, *records[first : first + batch_size]]:
            scorer.handle(batch, record, rules)  # type: ignore[arg-type]
        scorer.write_states(batch)
        state_bytes += sum(len(value) for _, value, _ in batch.changelog)
        state_records += len(batch.changelog)
        if decisions is not None:
            decisions += [
                value for topic, _, value, _, _ in batch.outputs if topic == topics.decisions
            ]
        # What the agent sends to the re-route topic comes back to it in a later batch.
        rerouted = [
            _Record(_Message(topic, key, value, time.time()))
            for topic, key, value, _, _ in batch.outputs
            if topic == topics.validated and key is not None
        ]
    elapsed = time.perf_counter() - started
    return Run(len(records) / elapsed, state_bytes / len(records), state_records / len(records))


def learned(rules: RuleSet, decisions: list[bytes], frauds: set[str]) -> OnlineModel:
    """A model that learned every scored transaction and its label (the learner's work,
    without waiting for labels: this measures scoring, not what the model knows)."""
    model, codec = OnlineModel(rules.model), WireCodec()
    for value in decisions:
        decision = codec.decode(value, (Decision,))
        if is_model_scored(decision.features):
            inputs = model_inputs(decision.features, rules.model)
            model.learn_event(inputs)
            model.learn_label(inputs, decision.event_id in frauds)
    return model


def fitted_trees(rules: RuleSet, decisions: list[bytes], frauds: set[str]) -> TreeModel:
    """The batch model trained on every scored transaction and its label, with the shipped
    settings (as many trees and leaves as a learner grows)."""
    codec, rows, labels = WireCodec(), [], []
    for value in decisions:
        decision = codec.decode(value, (Decision,))
        if is_model_scored(decision.features):
            rows.append(tree_input_values(decision.features, rules.model))
            labels.append(decision.event_id in frauds)
    names = tree_input_names(rules.model)
    return fit_trees(rows, labels, names, rules.model.batch, 0)


def frauds_among(transactions: int) -> set[str]:
    """The handbook's frauds among its first ``transactions`` rows (none without the file)."""
    settings = load_settings()
    if not settings.handbook_path.is_file():
        return set()
    return handbook_frauds(settings.handbook_path, transactions)


def learned_models(rules: RuleSet, transactions: int, gifts: int) -> tuple[OnlineModel, TreeModel]:
    """The online and the batch model after learning the benchmark's transactions and their
    labels, from an in-process replay through the scorer (what a learner ends with, without
    the wait)."""
    topics = Topics("bench")
    decisions: list[bytes] = []
    run(rules, _records(transactions, gifts, topics), topics, 100, decisions=decisions)
    frauds = frauds_among(transactions)
    return learned(rules, decisions, frauds), fitted_trees(rules, decisions, frauds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--gifts", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    topics = Topics("bench")
    records = _records(args.transactions, args.gifts, topics)
    shipped = load_rules()
    rules_only = shipped.model_copy(
        update={"model": shipped.model.model_copy(update={"enabled": False})}
    )
    decisions: list[bytes] = []
    rules_only_run = run(rules_only, records, topics, args.batch)
    model_on_run = run(shipped, records, topics, args.batch, decisions=decisions)
    frauds = frauds_among(args.transactions)
    model = learned(shipped, decisions, frauds)
    trees = tree_scorer(fitted_trees(shipped, decisions, frauds), shipped.model)
    frozen = FrozenModel(model)
    report = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "records": len(records),
        "batch": args.batch,
        "rules_only_events_per_s": round(rules_only_run.events_per_s),
        "model_on_events_per_s": round(model_on_run.events_per_s),
        "model_learned_events_per_s": round(
            run(shipped, records, topics, args.batch, frozen).events_per_s
        ),
        "model_learned_with_batch_events_per_s": round(
            run(shipped, records, topics, args.batch, frozen, trees=trees).events_per_s
        ),
        "batch_trees": len(trees.forest.roots),
        "batch_tree_nodes": len(trees.forest.feature),
        "model_learned_river_events_per_s": round(
            run(shipped, records, topics, args.batch, model).events_per_s
        ),
        "state_bytes_per_event": round(model_on_run.state_bytes_per_event),
        "state_records_per_event": round(model_on_run.state_records_per_event, 2),
    }
    print(json.dumps(report, indent=2))
    print(f"recorded in {record_result('scorer', report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
