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
import os
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

STOP_OVERRAN_EXIT = 1
"""The exit code of a process that did not finish stopping within its grace period."""


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


def exit_unless_stopped_within(
    grace_s: float, loop: asyncio.AbstractEventLoop | None = None
) -> threading.Timer:
    """From now on, end this process ``grace_s`` seconds later if it is still running.

    A stop waits on Kafka clients, threads and stores; one of them waiting on a broker that
    is gone kept a worker alive past any orchestrator's grace period. Ending unfinished loses
    nothing: events whose offsets were not committed are read and decided again on restart
    (at-least-once; decisions and sinks dedupe by event id). The log says where each thread
    was, and what each task of ``loop`` (the process's main loop) was awaiting, so the wait
    can be found."""

    def give_up() -> None:
        log.error(
            "did not finish stopping within %g s: exiting now; uncommitted events are "
            "decided again on restart. Where each thread was:\n%s\nWhat each task of the "
            "main loop was awaiting:\n%s",
            grace_s,
            thread_stacks(),
            task_stacks(loop) if loop is not None else "(no loop given)",
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(STOP_OVERRAN_EXIT)

    timer = threading.Timer(grace_s, give_up)
    timer.name = "stop-deadline"
    timer.daemon = True
    timer.start()
    return timer


def thread_stacks() -> str:
    """Every thread's name and current call stack (code locations only, no values)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"thread {names.get(ident, ident)}:\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items()
    )


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """Each pending task of ``loop`` and the chain of coroutines it is awaiting through (code
    locations only). Read from another thread, at exit: a task that changes meanwhile shows
    where it was."""
    tasks = asyncio.all_tasks(loop)  # retries by itself if the set changes while read
    return "\n".join(
        f"task {task.get_name()}:\n" + "".join(f"  {where}\n" for where in awaiting(task))
        for task in tasks
    )


def awaiting(task: asyncio.Future[Any]) -> list[str]:
    """Where a task's coroutine is, and every coroutine or generator it awaits in turn."""
    found = []
    step: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            found.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return found
