"""Pipeline benchmark: events/s and end-to-end latency through broker + worker.

Runs the demo machinery (embedded Tansu on 127.0.0.1, one worker process) twice:
a burst replay for throughput, then a paced replay for latency without queueing; then the
same two runs through a raw aiokafka consume -> produce passthrough on the same broker binary
(bench/passthrough.py). The pipeline/passthrough ratio is the figure we track.
Bounded: fixed event counts, and every wait has a timeout.

    .venv/bin/python -m bench.pipeline [--transactions 20000] [--gifts 2000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys

from atalaia.demo import DemoResult, run_demo
from atalaia.supervise import interrupt_on_sigterm
from bench.passthrough import PassthroughResult, run_passthrough
from config.settings import load_settings


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--gifts", type=int, default=2_000)
    parser.add_argument("--rate", type=int, default=500, help="pace of the latency run")
    args = parser.parse_args()
    interrupt_on_sigterm()
    settings = load_settings()
    burst = asyncio.run(run_demo(settings, args.transactions, args.gifts, None))
    paced = asyncio.run(
        run_demo(settings, max(1, args.rate * 10), args.gifts // 10 or 1, float(args.rate))
    )
    raw_burst = asyncio.run(run_passthrough(settings, burst.valid, None))
    raw_paced = asyncio.run(run_passthrough(settings, paced.valid, float(args.rate)))
    report = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "profile": settings.profile,
        "partitions": settings.partitions,
        "runs": [_row("burst", burst), _row(f"paced {args.rate}/s", paced)],
        "passthrough": [
            _row("burst", raw_burst),
            _row(f"paced {args.rate}/s", raw_paced),
        ],
        "burst_ratio_to_passthrough": round(burst.events_per_s / raw_burst.events_per_s, 3)
        if raw_burst.events_per_s
        else None,
    }
    print(json.dumps(report, indent=2))
    complete = burst.valid == burst.decided and paced.valid == paced.decided
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
