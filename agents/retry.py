"""Retrying a batch's output until it is stored, instead of moving on without it.

Faust's ``take_events`` acknowledges a batch even when its processing raises, so an agent that
let a failed write escape could have the batch's offsets committed without its outputs.
Agents therefore retry the whole write (idempotent downstream) with a capped backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0
T = TypeVar("T")


async def until_stored(
    write: Callable[[], Awaitable[T]],
    retry_on: tuple[type[BaseException], ...],
    what: str,
) -> T:
    """The result of the first attempt of ``write`` that does not raise one of ``retry_on``."""
    backoff = 0.1
    while True:
        try:
            return await write()
        except retry_on as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
