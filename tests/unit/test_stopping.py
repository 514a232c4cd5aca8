"""Stopping despite an unreachable broker: aiokafka's stray CancelledError is absorbed, a
real cancellation of the stopping task is not."""

from __future__ import annotations

import asyncio

import pytest

from streams.stopping import despite_unreachable_broker


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
