"""Faust's notion of the event being processed, set explicitly for batched agents."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from faust.streams import _current_event as current_event_var
from faust.types import EventT


@dataclass(frozen=True)
class PartitionMessage:
    topic: str
    partition: int


class PartitionEvent:
    """Stands in for a record of ``topic``'s ``partition`` when a table key of that
    partition is read or written with no record of it at hand (a worker counting an event
    for an entity whose partition it also owns). Faust's table reads only these two fields of
    the current event."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = PartitionMessage(topic, partition)


@contextmanager
def as_current(record: EventT[bytes] | PartitionEvent) -> Iterator[None]:
    """Make ``record`` this task's current event for Faust's table reads and writes (they go
    to the record's partition). Only this task's context variable is set: the stream's shared
    attribute is left alone, as ``take_events`` reads it for the next arriving record."""
    token = current_event_var.set(weakref.ref(record))  # type: ignore[arg-type]
    try:
        yield
    finally:
        current_event_var.reset(token)
