"""Model selection on the handbook data: candidate online models under the same protocol.

The engine's features are computed once by replaying the handbook through the scoring code
(``engine.replay``, cached under ``--cache``); then each candidate learns online from labels
known ``--delay-days`` after each transaction, scoring every transaction before any label
known after it, exactly as ``engine.learning.Learner`` does. Printed per candidate: the
handbook metrics on the test period and the time per predict+learn.

    .venv/bin/python -m bench.learning [--start 2018-05-01] [--from 2018-07-18] [--to 2018-07-31]
"""

from __future__ import annotations

import argparse
import heapq
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from river import compose, linear_model, optim, preprocessing, tree

from atalaia.evaluate import LOCAL_UTC_OFFSET_HOURS, TRAINING_WEEK, label_of, read_labelled
from config.rules import load_rules
from config.settings import load_settings
from engine.metrics import (
    auc_roc,
    average_precision,
    card_precision_at_k,
    handbook_test_indexes,
)
from engine.model_inputs import model_inputs
from engine.replay import Replay
from streams.views import default_list_view


@dataclass(frozen=True)
class Row:
    features: dict[str, int]
    """The decision's features: the model's inputs are computed from them at run time."""
    is_fraud: bool
    at_ms: int
    labelled_ms: int
    card: str
    day: date


def build_rows(start: date, end: date, delay: timedelta) -> list[Row]:
    settings = load_settings()
    rules = load_rules()
    items = list(read_labelled(settings.handbook_path, start, end))
    labels = [label_of(item, delay) for item in items]
    truth = {item.event.event_id: item.is_fraud for item in items}
    replay = Replay(rules, b"bench-key", default_list_view(b"bench-key"), learn=True)
    rows = []
    for replayed in replay.run((item.event for item in items), labels):
        event = replayed.event
        at_ms = int(event.occurred_at.timestamp() * 1000)
        local = event.occurred_at + timedelta(hours=LOCAL_UTC_OFFSET_HOURS)
        rows.append(
            Row(
                replayed.outcome.assessment.features,
                truth[event.event_id],
                at_ms,
                at_ms + int(delay.total_seconds() * 1000),
                getattr(event, "user_id", ""),
                local.date(),
            )
        )
    return rows


Model = Any


def candidates(shipped_rate: float) -> dict[str, Callable[[], Model]]:
    def lr(optimizer: Callable[[], optim.base.Optimizer]) -> Callable[[], Model]:
        return lambda: (
            preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optimizer())
        )

    return {
        f"logistic regression, SGD {shipped_rate} (shipped)": lr(lambda: optim.SGD(shipped_rate)),
        "logistic regression, SGD 0.01": lr(lambda: optim.SGD(0.01)),
        "logistic regression, SGD 0.001": lr(lambda: optim.SGD(0.001)),
        "logistic regression, Adam 0.001": lr(lambda: optim.Adam(0.001)),
        "Hoeffding adaptive tree": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=1),
    }


def run(
    make: Callable[[], Model], rows: list[Row], inputs: list[dict[str, float]], fraud_weight: float
) -> tuple[list[float], float]:
    """Scores of every row, each made before learning any label known after it."""
    model = make()
    pending: list[tuple[int, int]] = []
    scores = []
    started = time.perf_counter()
    for i, row in enumerate(rows):
        while pending and pending[0][0] <= row.at_ms:
            _, j = heapq.heappop(pending)
            label = rows[j]
            model.learn_one(inputs[j], label.is_fraud, **_weight(model, label, fraud_weight))
        scores.append(float(model.predict_proba_one(inputs[i]).get(True, 0.0)))
        heapq.heappush(pending, (row.labelled_ms, i))
    return scores, (time.perf_counter() - started) / len(rows) * 1e6


def _weight(model: Model, row: Row, fraud_weight: float) -> dict[str, float]:
    """Class weighting where the model takes a sample weight."""
    if isinstance(model, compose.Pipeline) and row.is_fraud:
        return {"w": fraud_weight}
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2018, 5, 1))
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2018, 7, 18))
    parser.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2018, 7, 31))
    parser.add_argument("--delay-days", type=int, default=7)
    parser.add_argument("--fraud-weight", type=float, default=load_rules().model.fraud_weight)
    parser.add_argument("--only", help="run the candidates whose name contains this")
    parser.add_argument("--cache", type=Path, default=Path(".atalaia/bench-learning-v2.pickle"))
    args = parser.parse_args()
    delay = timedelta(days=args.delay_days)
    rules = load_rules()
    # The cached features depend on the windows and the known-fraud settings, not the inputs.
    known = (rules.model.known_fraud_entities, rules.model.known_fraud_windows)
    key = (args.start, args.last, args.delay_days, rules.velocity, known)
    rows: list[Row] | None = None
    if args.cache.is_file():
        cached_key, cached_rows = pickle.loads(args.cache.read_bytes())
        rows = [Row(*fields) for fields in cached_rows] if cached_key == key else None
    if rows is None:
        print("replaying the handbook through the scoring code...", file=sys.stderr)
        rows = build_rows(args.start, args.last, delay)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        plain = [(r.features, r.is_fraud, r.at_ms, r.labelled_ms, r.card, r.day) for r in rows]
        args.cache.write_bytes(pickle.dumps((key, plain)))
    variants = {
        "": rules.model,
        ", no amount bands": rules.model.model_copy(update={"amount_bands_per_octave": 0}),
        ", 2 amount bands per octave": rules.model.model_copy(
            update={"amount_bands_per_octave": 2}
        ),
    }
    measured = handbook_test_indexes(
        [r.day for r in rows],
        [r.card for r in rows],
        [r.is_fraud for r in rows],
        args.first,
        args.first - delay - TRAINING_WEEK,
        delay.days,
    )
    truth = [rows[i].is_fraud for i in measured]
    print(f"{len(rows):,} transactions; test set {len(measured):,} with {sum(truth):,} frauds")
    print("| model | AUC ROC | AP | CP@100 | µs per predict+learn |\n|---|---|---|---|---|")
    runs = [
        (f"{name}{variant}", make, model_rules)
        for name, make in candidates(rules.model.learning_rate).items()
        for variant, model_rules in variants.items()
        if not variant or name.endswith("(shipped)")
    ]
    for name, make, model_rules in runs:
        if args.only and args.only not in name:
            continue
        inputs = [model_inputs(row.features, model_rules) for row in rows]
        scores, micros = run(make, rows, inputs, args.fraud_weight)
        test_scores = [scores[i] for i in measured]
        days = [rows[i].day for i in measured]
        cards = [rows[i].card for i in measured]
        print(
            f"| {name} | {auc_roc(test_scores, truth):.3f} | "
            f"{average_precision(test_scores, truth):.3f} | "
            f"{card_precision_at_k(days, cards, test_scores, truth, 100):.3f} | {micros:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
