"""Stopping despite an unreachable broker: aiokafka's stray CancelledError is absorbed, a
real cancellation of the stopping task is not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from streams.stopping import (
    STOP_OVERRAN_EXIT,
    despite_unreachable_broker,
    exit_unless_stopped_within,
)


async def _close_raising_a_stray_cancellation() -> None:
    """What aiokafka's consumer.stop() does when a fetch was waiting to retry."""
    fetch = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    fetch.cancel()
    await fetch


def test_a_stray_cancellation_from_the_client_is_absorbed() -> None:
    async def stop() -> str:
        await despite_unreachable_broker(_close_raising_a_stray_cancellation())
        return "stopped"

    assert asyncio.run(stop()) == "stopped"


def test_a_stop_that_is_itself_cancelled_stays_cancelled() -> None:
    async def main() -> None:
        stopping = asyncio.create_task(despite_unreachable_broker(asyncio.sleep(10)))
        await asyncio.sleep(0)
        stopping.cancel()
        await stopping

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_a_stray_cancellation_is_absorbed_in_a_task_cancelled_before_its_cleanup() -> None:
    """aiohttp cancels its main task on SIGTERM, then runs the cleanup callbacks in it."""

    async def serve_then_clean_up() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await despite_unreachable_broker(_close_raising_a_stray_cancellation())
            return "cleaned up"
        return "not cancelled"

    async def main() -> str:
        serving = asyncio.create_task(serve_then_clean_up())
        await asyncio.sleep(0)
        serving.cancel()
        return await serving

    assert asyncio.run(main()) == "cleaned up"


def test_a_clean_stop_returns() -> None:
    asyncio.run(despite_unreachable_broker(asyncio.sleep(0)))


STOP_THAT_HANGS = """
import asyncio, logging, sys
from streams.stopping import exit_unless_stopped_within
logging.basicConfig(stream=sys.stdout, level=logging.INFO)
async def committing_to_a_broker_that_is_gone():
    await asyncio.sleep(30)
async def waiting_on_a_broker_that_is_gone():
    exit_unless_stopped_within(0.5, asyncio.get_running_loop())
    await committing_to_a_broker_that_is_gone()
asyncio.run(waiting_on_a_broker_that_is_gone())
"""


def test_a_stop_past_its_grace_period_exits_1_and_says_where_it_waited() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STOP_THAT_HANGS], capture_output=True, text=True, timeout=20
    )
    assert time.monotonic() - started < 10
    assert done.returncode == STOP_OVERRAN_EXIT == 1
    assert "did not finish stopping within 0.5 s" in done.stdout
    assert "thread MainThread:" in done.stdout
    tasks = done.stdout.split("What each task of the main loop was awaiting:")[1]
    assert "in committing_to_a_broker_that_is_gone" in tasks  # down the awaited coroutines
    assert "Traceback" not in done.stdout + done.stderr


def test_a_stop_within_its_grace_period_is_left_alone() -> None:
    timer = exit_unless_stopped_within(60)
    assert timer.daemon  # never holds up the process's exit
    timer.cancel()
