"""Stopping promptly: Kafka clients also when the broker is unreachable, and blocking calls
that must not hold up a process asked to stop.

aiokafka 0.14's fetcher cancels its in-flight fetches when the consumer stops and awaits
them; a fetch that was waiting to retry (the broker refused the connection) ends with a
CancelledError that ``close()`` lets through. Let through, it killed Faust's consumer thread
(the worker never finished stopping) and the learner's shutdown (a traceback, exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


async def in_daemon_thread(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` run in a thread of its own that does not hold up the process's exit.

    ``asyncio.to_thread`` runs it in the default executor, whose threads the interpreter
    joins before it exits: a long query or a stuck insert there kept a stopped sink alive
    until it ended. Cancelling the awaiting task abandons the call (its result is dropped)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            result, error = call(*args), None
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=getattr(call, "__name__", "call"), daemon=True).start()
    return await done


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
