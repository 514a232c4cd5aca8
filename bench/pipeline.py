"""Pipeline benchmark: events/s and end-to-end latency through broker + worker.

Runs the demo machinery (embedded Tansu on 127.0.0.1, one worker process): a burst replay
with the online model off (rules only), the same burst with the model on and the learner
running beside the worker, the same burst scored with a snapshot of a model that learned
these events and their labels, no learner running (the worker's own figure with a trained
model: on two cores the learner takes a share of them), the same again with a batch model
trained on them blended in (the full model a worker scores with once the learner has trained
its trees), then a paced replay (model on) for latency without queueing; then
a burst and a paced run through a raw aiokafka consume -> produce passthrough on the same
broker binary (bench/passthrough.py). The pipeline/passthrough ratio is the figure we track,
and the model-on/rules-only ratio says what predict+learn costs.
Bounded: fixed event counts, and every wait has a timeout.

    .venv/bin/python -m bench.pipeline [--transactions 20000] [--gifts 2000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from atalaia.demo import DemoResult, run_demo
from atalaia.supervise import interrupt_on_sigterm
from bench.passthrough import PassthroughResult, run_passthrough
from bench.results import record_result
from bench.scorer import learned_models
from config.rules import default_rules_path, load_rules
from config.settings import Settings, load_settings
from engine.learning import BATCH, CHAMPION, sealed_snapshot
from schemas.models import ModelSnapshot

FULL_MODEL_RUN = "burst, full model (learned online and batch snapshots, no learner)"


def _row(label: str, result: DemoResult | PassthroughResult) -> dict[str, object]:
    row: dict[str, object] = {
        "run": label,
        "events": result.decided if isinstance(result, DemoResult) else result.forwarded,
        "events_per_s": round(result.events_per_s),
        "p50_ms": result.latency_percentile(0.50),
        "p99_ms": result.latency_percentile(0.99),
    }
    if isinstance(result, DemoResult):
        row["missing"] = result.valid - result.decided
    return row


def _without_model(directory: Path) -> Path:
    """The shipped rules with the online model off (the rules-only run)."""
    text = default_rules_path().read_text()
    assert "\n[model]\nenabled = true\n" in text
    path = directory / "rules-only.toml"
    path.write_text(text.replace("\n[model]\nenabled = true\n", "\n[model]\nenabled = false\n"))
    return path


def _learned_snapshots(settings: Settings, transactions: int, gifts: int) -> list[ModelSnapshot]:
    """The snapshots of an online and a batch model that learned the burst's transactions
    and labels, signed with the deployment's key: the worker scores with trained models (the
    batch model's trees blended in, as once a learner has trained one), no learner beside it
    taking a share of the two cores."""
    rules = load_rules()
    online, trees = learned_models(rules, transactions, gifts)
    key, now = settings.pii_hash_key.get_secret_value().encode(), datetime.now(UTC)
    # Known until the epoch: usable for every event, however old.
    return [
        sealed_snapshot(CHAMPION, f"{rules.model.family}.bench", online, 0, key, now),
        sealed_snapshot(BATCH, f"{rules.model.batch.family}.bench", trees, 0, key, now),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--gifts", type=int, default=2_000)
    parser.add_argument("--rate", type=int, default=500, help="pace of the latency run")
    args = parser.parse_args()
    interrupt_on_sigterm()
    started_load = os.getloadavg()[0]
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        rules_only = settings.model_copy(update={"rules_path": _without_model(Path(tmp))})
        burst_rules = asyncio.run(run_demo(rules_only, args.transactions, args.gifts, None))
    burst = asyncio.run(run_demo(settings, args.transactions, args.gifts, None, learner_only=True))
    online, trees = _learned_snapshots(settings, args.transactions, args.gifts)
    burst_learned = asyncio.run(
        run_demo(settings, args.transactions, args.gifts, None, models=[online])
    )
    burst_full = asyncio.run(
        run_demo(settings, args.transactions, args.gifts, None, models=[online, trees])
    )
    paced_transactions, paced_gifts = max(1, args.rate * 10), args.gifts // 10 or 1
    paced = asyncio.run(
        run_demo(settings, paced_transactions, paced_gifts, float(args.rate), learner_only=True)
    )
    raw_burst = asyncio.run(run_passthrough(settings, args.transactions, args.gifts, None))
    raw_paced = asyncio.run(
        run_passthrough(settings, paced_transactions, paced_gifts, float(args.rate))
    )
    report = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "profile": settings.profile,
        "partitions": settings.partitions,
        "runs": [
            _row("burst, rules only (model off)", burst_rules),
            _row("burst, model on (learner running)", burst),
            _row("burst, model on (a learned snapshot, no learner)", burst_learned),
            _row(FULL_MODEL_RUN, burst_full),
            _row(f"paced {args.rate}/s, model on", paced),
        ],
        "model_on_to_rules_only": round(burst.events_per_s / burst_rules.events_per_s, 3)
        if burst_rules.events_per_s
        else None,
        "passthrough": [
            _row("burst", raw_burst),
            _row(f"paced {args.rate}/s", raw_paced),
        ],
        "burst_ratio_to_passthrough": round(burst.events_per_s / raw_burst.events_per_s, 3)
        if raw_burst.events_per_s
        else None,
    }
    print(json.dumps(report, indent=2))
    print(f"recorded in {record_result('pipeline', report, started_load)}", file=sys.stderr)
    runs = (burst_rules, burst, burst_learned, burst_full, paced)
    complete = all(r.valid == r.decided for r in runs)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
