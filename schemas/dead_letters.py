"""Building the DeadLetter for a rejected Kafka record, whatever client read it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from schemas.models import DeadLetter


class SourceRecord(Protocol):
    """What Faust messages and aiokafka consumer records both offer."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def dead_letter_of(
    record: SourceRecord, error_class: str, message: str, failed_at: datetime
) -> tuple[bytes, DeadLetter]:
    """The DLQ key (``topic:partition:offset``, unique per source record) and the letter."""
    letter = DeadLetter(
        original_value=record.value,
        original_key=record.key,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        error_class=error_class,
        error_message=message,
        failed_at=failed_at,
    )
    return f"{record.topic}:{record.partition}:{record.offset}".encode(), letter
