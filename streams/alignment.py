"""Which records of one fetch a worker hands out now, so that a backlog is decided in the
order it was published across the input topics.

Upstream keys every input by its subject, so one subject's transactions, logins and gift
events sit in the same partition number of their three topics. From a backlog a fetch
brings a chunk of each partition; a sparse topic's chunk spans far more time than a busy
one's (a gift chunk can cover days where a transaction chunk covers hours), and handed out
whole it is decided days ahead of the logins and payments published before it. A listed
person's login that lists their user (``engine.lists.links_for``) then comes after the gifts
it should have caught, and a session's login after its payments.

So within each partition number the chunks are cut at the earliest chunk end: records up
to then are handed out, merged by time; the rest of each chunk is handed out with a later
fetch (the caller holds it). The partition whose chunk ends first is handed out whole, so
every fetch makes progress. A partition left out of the fetch holds the others back down to
the time it was handed out until (``behind``; the caller bounds how long). Live traffic,
a few records a fetch, is not cut, only merged. Time is the event's own (``event_time``)
where the worker reads it, the record's timestamp otherwise; within a partition the offset
order is kept.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from schemas.codec import FRAME_HEADER_BYTES, MAGIC_BYTE, WireCodec
from schemas.models import InputEvent


class FetchedRecord(Protocol):
    topic: str
    timestamp: int
    offset: int
    value: bytes | None


TimeOf = Callable[[Any], int]
"""When a fetched record's event happened, in epoch milliseconds."""


def published_at(record: FetchedRecord) -> int:
    """The record's own timestamp: the producer's clock at send, unless it set one."""
    return record.timestamp


def _long_at(data: bytes, at: int) -> tuple[int, int]:
    """An Avro long (zigzag varint) at ``at``, and the position after it."""
    shift = packed = 0
    while True:
        byte = data[at]
        packed |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return (packed >> 1) ^ -(packed & 1), at
        shift += 7
        if shift > 63:
            raise ValueError("Avro long longer than 10 bytes")


def avro_occurred_ms(value: bytes) -> int:
    """``occurred_at`` of a framed Avro input event, read without decoding the rest: every
    input schema, every version, starts with ``event_id`` (string) then ``occurred_at``
    (timestamp-millis). Raises on a value too short or malformed for that."""
    length, at = _long_at(value, FRAME_HEADER_BYTES)
    if length < 0:
        raise ValueError("negative string length")
    occurred, _ = _long_at(value, at + length)
    return occurred


def json_occurred_ms(value: bytes) -> int | None:
    """``occurred_at`` of a JSON event when it is an ISO 8601 string with its UTC offset (as
    producers send it), read without validating the rest: ~20x cheaper than decoding the
    contract. None for any other form (the contract decides); raises on invalid JSON."""
    document = orjson.loads(value)
    occurred = document.get("occurred_at") if isinstance(document, dict) else None
    if not isinstance(occurred, str):
        return None
    at = datetime.fromisoformat(occurred)
    return None if at.tzinfo is None else int(at.timestamp() * 1000)


def event_time(codec: WireCodec, contracts: Mapping[str, type[InputEvent]]) -> TimeOf:
    """The earlier of the event's ``occurred_at`` and the record's timestamp: a backlog
    published faster than a millisecond per event still sorts by when its events happened,
    and an event stamped in the future cannot hold its partition back. Framed Avro is read
    up to ``occurred_at`` only; JSON up to it when it is an ISO string with an offset, else
    decoded as its topic's contract. A record that does not read goes by its timestamp (the
    scoring agent dead-letters it)."""
    most_bytes = codec.bounds.max_record_bytes

    def time_of(record: FetchedRecord) -> int:
        value = record.value or b""
        try:
            if value[:1] == bytes([MAGIC_BYTE]):
                occurred = avro_occurred_ms(value)
            else:
                quick = json_occurred_ms(value) if len(value) <= most_bytes else None
                if quick is None:
                    decoded = codec.decode(value, (contracts[record.topic],))
                    quick = int(decoded.occurred_at.timestamp() * 1000)
                occurred = quick
        except Exception:  # any hostile value: ordered by its timestamp, judged downstream
            return record.timestamp
        return min(record.timestamp, occurred)

    return time_of


@dataclass
class Cut:
    """The records to hand out now, in order, and where the rest of each cut partition
    starts; the partitions left as fetched, for the consumer's own scheduling."""

    now: list[tuple[Any, Any]] = field(default_factory=list)
    as_fetched: list[Any] = field(default_factory=list)
    rest_from: dict[Any, int] = field(default_factory=dict)
    handed_until: dict[Any, int] = field(default_factory=dict)
    """The time of the last record handed out, per partition whose records were timed."""


def _running_max(records: Sequence[FetchedRecord], time_of: TimeOf) -> list[int]:
    """Each record's time as a running maximum: a partition may step back in time (several
    producers, late events), and a cut must keep the offset order."""
    latest, times = -(2**63), []
    for record in records:
        latest = max(latest, time_of(record))
        times.append(latest)
    return times


def cut_in_publishing_order(
    records: Mapping[Any, Sequence[FetchedRecord]],
    aligned_topics: frozenset[str],
    time_of: TimeOf = published_at,
    behind: Mapping[int, int] | None = None,
    backlogged: Collection[int] | None = None,
) -> Cut:
    """The fetched records of ``aligned_topics`` (keyed by topic partition), cut and merged
    per partition number by ``time_of``; other topics' partitions are not in the answer.
    ``behind`` bounds a partition number's cut by a topic not in this fetch whose records
    are not all read and were handed out up to that time. Only the partition numbers in
    ``backlogged`` (all when None) are cut: live traffic, read as it comes, is handed out
    whole, merged by time (a cut would only delay it a fetch). A partition number with one
    topic in the fetch and no bound is left as fetched (``Cut.as_fetched``), not read by
    ``time_of``."""
    behind = behind or {}
    groups: dict[int, list[Any]] = defaultdict(list)
    for tp, batch in records.items():
        if tp.topic in aligned_topics and batch:
            groups[tp.partition].append(tp)
    cut, merged = Cut(), []
    for tps in groups.values():
        number = tps[0].partition
        live = backlogged is not None and number not in backlogged
        if len(tps) == 1 and (live or number not in behind):
            cut.as_fetched += tps
            continue
        times = {tp: _running_max(records[tp], time_of) for tp in tps}
        ends = [running[-1] for running in times.values()]
        frontier = max(ends) if live else min([*ends, behind.get(number, ends[0])])
        for tp in tps:
            taken = sum(1 for at in times[tp] if at <= frontier)
            batch = records[tp]
            if taken < len(batch):
                cut.rest_from[tp] = batch[taken].offset
            if taken:
                cut.handed_until[tp] = times[tp][taken - 1]
            merged.append(_stamped(tp, batch[:taken], times[tp]))
    cut.now += [(tp, record) for _, _, tp, record in heapq.merge(*merged)]
    return cut


def _stamped(
    tp: Any, batch: Sequence[FetchedRecord], times: list[int]
) -> Iterator[tuple[int, int, Any, FetchedRecord]]:
    """(time, tie-break, tp, record): ties between partitions go by offset, never compare
    the records themselves."""
    return ((at, record.offset, tp, record) for at, record in zip(times, batch, strict=False))
