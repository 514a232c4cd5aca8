"""Synchronous path benchmark: answer time of ``POST /v1/decide/{kind}``.

Starts the embedded broker, one worker and ``atalaia api`` on 127.0.0.1, then sends a fixed
number of events as callers that wait for each answer (GiftPix before paying): first one
caller, then ``--concurrency`` callers at once. Prints the client-side answer time (p50, p99,
max) and how many answers came from the engine rather than the timeout policy.
Bounded: fixed counts, every request has a timeout, all processes are stopped at the end.

    .venv/bin/python -m bench.api [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout

from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.demo import await_worker, local_settings
from atalaia.measure import percentile
from atalaia.sample import generated_gifts, interleave, synthetic_transactions
from atalaia.scratch import scratch_directory
from atalaia.supervise import WorkerProcess, interrupt_on_sigterm
from bench.results import record_result
from config.settings import Settings, load_settings
from schemas.codec import WireCodec
from schemas.models import EVENT_KIND_OF, InputEvent
from streams.admin import ensure_topics
from streams.topics import Topics

API_READY_TIMEOUT_S = 30.0


async def _call(session: ClientSession, base: str, event: InputEvent) -> tuple[float, str]:
    started = time.monotonic()
    kind = EVENT_KIND_OF[type(event)].value
    async with session.post(f"{base}/v1/decide/{kind}", data=event.model_dump_json()) as answer:
        body = await answer.json()
    return (time.monotonic() - started) * 1000, str(body.get("source", f"HTTP {answer.status}"))


async def _callers(base: str, events: list[InputEvent], concurrency: int) -> dict[str, object]:
    """``concurrency`` callers share the events; each waits for its answer before the next."""
    queue: asyncio.Queue[InputEvent] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    times: list[float] = []
    sources: Counter[str] = Counter()

    async def caller(session: ClientSession) -> None:
        while not queue.empty():
            spent, source = await _call(session, base, queue.get_nowait())
            times.append(spent)
            sources[source] += 1

    started = time.monotonic()
    async with ClientSession(timeout=ClientTimeout(total=10)) as session:
        await asyncio.gather(*(caller(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    ms = [round(t) for t in times]
    return {
        "callers": concurrency,
        "requests": len(ms),
        "answers_per_s": round(len(ms) / elapsed) if elapsed else None,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms, default=0),
        "sources": dict(sources),
    }


async def run(settings: Settings, requests: int, concurrency: int) -> dict[str, object]:
    now = datetime.now(UTC).replace(microsecond=0)
    half = requests // 2
    events = list(
        interleave(
            synthetic_transactions(half, now - timedelta(seconds=30 * half + 60)),  # 30 s apart
            generated_gifts(requests - half, now - timedelta(seconds=60 * requests)),
        )
    )
    with scratch_directory("atalaia-bench-api-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
            local = local_settings(settings, broker.bootstrap_servers, workdir, "bench-api")
            bench = local.model_copy(update={"api_port": free_port(), "redis_url": None})
            await ensure_topics(bench)
            worker = WorkerProcess(bench, workdir / "worker.log").start()
            api = WorkerProcess(bench, workdir / "api.log", command="api").start()
            try:
                ready_s = await await_worker(
                    bench.bootstrap_servers,
                    WireCodec(),
                    Topics(bench.topic_prefix),
                    time.monotonic(),
                )
                if not wait_for_port("127.0.0.1", bench.api_port, API_READY_TIMEOUT_S):
                    raise SystemExit(f"the API did not listen; see {workdir / 'api.log'}")
                base = f"http://127.0.0.1:{bench.api_port}"
                split = len(events) // 2
                one = await _callers(base, events[:split], 1)
                many = await _callers(base, events[split:], concurrency)
            finally:
                api.stop()
                worker.stop()
    return {"worker_ready_s": round(ready_s, 1), "runs": [one, many]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    interrupt_on_sigterm()
    report = asyncio.run(run(load_settings(), args.requests, args.concurrency))
    print(json.dumps(report, indent=2))
    print(f"recorded in {record_result('api', report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
