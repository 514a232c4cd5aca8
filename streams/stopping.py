"""Stopping Kafka clients also when the broker is unreachable.

aiokafka 0.14's fetcher cancels its in-flight fetches when the consumer stops and awaits
them; a fetch that was waiting to retry (the broker refused the connection) ends with a
CancelledError that ``close()`` lets through. Let through, it killed Faust's consumer thread
(the worker never finished stopping) and the learner's shutdown (a traceback, exit 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger(__name__)


async def despite_unreachable_broker(stopping: Awaitable[None]) -> None:
    """Await ``stopping``; a CancelledError it raises without a new cancellation of this task
    is aiokafka's, and is logged instead. (A task stopping its clients may already have been
    cancelled once, as aiohttp's shutdown does: only a cancellation during the stop counts.)"""
    task = asyncio.current_task()
    cancellations = task.cancelling() if task is not None else 0
    try:
        await stopping
    except asyncio.CancelledError:
        if task is not None and task.cancelling() > cancellations:
            raise
        log.warning("Kafka client stopped while the broker was unreachable")
