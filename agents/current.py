"""Faust's notion of the event being processed, set explicitly for batched agents."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event as current_event_var
from faust.types import EventT


@contextmanager
def as_current(record: EventT[bytes]) -> Iterator[None]:
    """Make ``record`` this task's current event for Faust's table reads and writes (they go
    to the record's partition). Only this task's context variable is set: the stream's shared
    attribute is left alone, as ``take_events`` reads it for the next arriving record."""
    token = current_event_var.set(weakref.ref(record))
    try:
        yield
    finally:
        current_event_var.reset(token)
