"""Exact sliding-window velocity state for one entity, owned by the code, not by Faust.

Events are kept as per-second buckets per metric (count, amount and each event's amount,
distinct counterparties, countries and devices); buckets older than the horizon behind the
newest event are dropped, so memory is bounded by the horizon. A window of length W for an
event at second t covers the events *already recorded* whose second lies in (t - W, t], the
event itself included: at first processing that is exactly "what had happened before, within
W".

Re-delivered events (at-least-once) are recognised by event id: they are not counted again, and
they get back the features computed the first time, so their decision is identical.

Amount sums saturate at ``MAX_SUM``, the largest Avro long: a window holding more money than
that still reads as enormous, and neither the state's JSON nor a decision can overflow.

>>> state = VelocityState()
>>> first = Observation("e1", at_ms=1_000, metric="tx", amount_cents=500)
>>> state.record(first, horizon_s=3600)
True
>>> state.record(Observation("e2", at_ms=61_000, metric="tx", amount_cents=700), 3600)
True
>>> state.window("tx", at_ms=61_000, length_s=60)
WindowStats(count=1, amount_cents=700, counterparties=0, countries=0, devices=0)
>>> state.window("tx", at_ms=61_000, length_s=61).count
2
>>> state.record(first, 3600)  # a re-delivery is not counted twice
False
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

import lz4.block
import orjson
import zstandard

from config.rules import MAX_HORIZON_S
from engine.feature_names import KNOWN_FEATURE_NAMES

MAX_SUM: Final = 2**63 - 1
"""Where amount sums stop: the largest Avro long (and the largest integer orjson writes)."""


def saturated(total: int) -> int:
    """``total``, or ``MAX_SUM`` if it is larger.

    >>> saturated(2**64), saturated(5)
    (9223372036854775807, 5)
    """
    return total if total < MAX_SUM else MAX_SUM


class Observation(NamedTuple):
    """What one event contributes to its entity's windows (a tuple: each event builds one
    per state it is counted in)."""

    event_id: str
    at_ms: int
    metric: str
    amount_cents: int = 0
    counterparty: str | None = None
    country: str | None = None
    device: str | None = None
    lat: float | None = None
    lon: float | None = None


class WindowStats(NamedTuple):
    """A tuple: one is built per window read, several per event. Its ``count`` field
    replaces the tuple method of that name, which nothing here calls."""

    count: int  # type: ignore[assignment]
    amount_cents: int
    counterparties: int
    countries: int
    devices: int


_NO_EVENTS: Final = WindowStats(0, 0, 0, 0, 0)


class _Bucket:
    """One second of a metric. A plain class, not a dataclass: compiled, a dataclass is
    built through its generated ``__init__``, run as Python (states read from the store
    build one bucket per second they hold)."""

    def __init__(
        self,
        count: int = 0,
        amount_cents: int = 0,
        counterparties: set[str] | None = None,
        countries: set[str] | None = None,
        devices: set[str] | None = None,
        amounts: list[int] | None = None,
    ) -> None:
        self.count = count
        self.amount_cents = amount_cents
        self.counterparties: set[str] = set() if counterparties is None else counterparties
        self.countries: set[str] = set() if countries is None else countries
        self.devices: set[str] = set() if devices is None else devices
        self.amounts: list[int] = [] if amounts is None else amounts  # one per event
        self.row: bytes | None = None
        """Its serialised row while unchanged: a state is written after every batch that
        changed it, and most of its buckets did not change."""

    def add(self, obs: Observation) -> None:
        self.row = None
        self.count += 1
        self.amount_cents = saturated(self.amount_cents + obs.amount_cents)
        self.amounts.append(obs.amount_cents)
        for values, value in (
            (self.counterparties, obs.counterparty),
            (self.countries, obs.country),
            (self.devices, obs.device),
        ):
            if value is not None:
                values.add(value)

    def dump(self, second: int) -> bytes:
        """The bucket's row (``second`` is the bucket's own: buckets never move): a lone
        event's as ``[second, amount, counterparty, country, device]`` (most buckets hold
        one), any other as ``[second, count, amount, counterparties, countries, devices,
        amounts]``."""
        if self.row is None:
            row: list[object]
            if self.count == 1 and self.amounts == [self.amount_cents] and self._lone_values():
                row = [
                    second,
                    self.amount_cents,
                    _lone(self.counterparties),
                    _lone(self.countries),
                    _lone(self.devices),
                ]
            else:
                row = [
                    second,
                    self.count,
                    self.amount_cents,
                    sorted(self.counterparties),
                    sorted(self.countries),
                    sorted(self.devices),
                    sorted(self.amounts),
                ]
            self.row = _kept(orjson.dumps(row))
        return self.row

    def _lone_values(self) -> bool:
        return len(self.counterparties) < 2 and len(self.countries) < 2 and len(self.devices) < 2

    @classmethod
    def of_row(cls, row: list[Any]) -> _Bucket:
        """A bucket from its stored row, in any form written so far."""
        if len(row) == LONE_EVENT_ROW:
            _, amount, counterparty, country, device = row
            return cls(
                1, amount, _set_of(counterparty), _set_of(country), _set_of(device), [amount]
            )
        _, count, amount, counterparties, countries, devices, *rest = row
        # States written before amounts were kept lack them: the total stands in for a
        # single event, nothing for several (no false repeats).
        amounts = rest[0] if rest else ([amount] if count == 1 else [])
        return cls(count, amount, set(counterparties), set(countries), set(devices), amounts)


LONE_EVENT_ROW: Final = 5
"""Fields of a one-event bucket's row (a full row has 7, one written before amounts 6)."""


def _lone(values: set[str]) -> str | None:
    """The only value of a one-event bucket's set, or None."""
    for value in values:
        return value
    return None


def _set_of(value: str | None) -> set[str]:
    return set() if value is None else {value}


Features = dict[str, int]


def _kept(serialised: bytes) -> bytes:
    """An exact-size copy of orjson's output, which keeps the capacity of its working buffer
    (several KB): rows stay in memory as long as their state is cached."""
    return memoryview(serialised).tobytes()


_NUMBER_OF: Final[dict[str, int]] = {name: n for n, name in enumerate(KNOWN_FEATURE_NAMES)}


def _numbered(names: tuple[str, ...]) -> list[int | str]:
    """Feature names as stored: a known name as its number, any other in full."""
    return [_NUMBER_OF.get(name, name) for name in names]


def _named(stored: list[int | str]) -> tuple[str, ...]:
    """Feature names back from a state (older states hold every name in full)."""
    return tuple(_name_of(name) for name in stored)


def _name_of(stored: int | str) -> str:
    """A stored feature name; a number past the known names (a state from a newer version)
    reads as ``feature#<n>``."""
    if isinstance(stored, str):
        return stored
    if stored < len(KNOWN_FEATURE_NAMES):
        return KNOWN_FEATURE_NAMES[stored]
    return f"feature#{stored}"


LZ4_STATE: Final = b"\x01"
"""The first byte of a state stored as an LZ4 block, as written before zstd (a plain JSON
document starts with ``{``)."""
ZSTD_STATE: Final = b"\x02"
"""The first byte of a state stored as a zstd frame."""
ZSTD_LEVEL: Final = 1
_COMPRESSOR = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


MAX_DOCUMENT_BYTES: Final = 64 * 1024 * 1024
"""The largest state document read back: a damaged frame or block may claim any size, and
both decompressors allocate what it claims before they find it damaged."""


def document_of(data: bytes) -> bytes:
    """A stored state's JSON document: a zstd frame, or as written before: an LZ4 block or
    plain JSON. ValueError for a frame or block claiming more than ``MAX_DOCUMENT_BYTES``."""
    head = data[:1]
    if head == ZSTD_STATE:
        return _decompressed(data[1:])
    if head == CHUNKED_STATE:
        raise ValueError("a state kept in parts: read it from its store (from_store)")
    if head == LZ4_STATE:
        _check_size(int.from_bytes(data[1:5], "little") if len(data) >= 5 else -1)
        document: bytes = lz4.block.decompress(data[1:])
        return document
    return data


def _decompressed(frame: bytes) -> bytes:
    _check_size(zstandard.frame_content_size(frame))
    document: bytes = _DECOMPRESSOR.decompress(frame)
    return document


def _check_size(claimed: int) -> None:
    if not 0 <= claimed <= MAX_DOCUMENT_BYTES:
        raise ValueError(f"a stored state claims {claimed} bytes")


CHUNKED_STATE: Final = b"\x03"
"""The first byte of a state's head when the state is kept in parts: the head (shapes,
blocks, and the last place once its day's part may be reused) under the state's key, each
day's buckets and recorded events under ``key + day_part(day)``. A batch writes only the
parts it changed: a key's history is not rewritten with every event, and most batches
write one part per key they touch (ADR 0002)."""
CHUNK_S: Final = 86_400
"""The span of one part of a state's history: a day of event time."""
DAY_SLOTS: Final = MAX_HORIZON_S // CHUNK_S + 1
"""Day ``d`` is kept in slot ``d % DAY_SLOTS``: a day's part overwrites the one of
``DAY_SLOTS`` days before, behind any horizon a state keeps (its events span at most
``DAY_SLOTS`` days), so no part is ever deleted."""

StatePart = tuple[bytes, bytes]
"""A changed part of a state: its key suffix and its stored value."""


def day_part(day: int) -> bytes:
    """Key suffix of the slot holding a state's ``day`` (days since the epoch)."""
    return b"\x00d%d" % (day % DAY_SLOTS)


def _metrics_object(rows: dict[str, list[bytes]]) -> bytes:
    """The inside of a document's ``"m"`` object: each metric with its buckets' rows."""
    return b",".join(
        orjson.dumps(metric) + b":[" + b",".join(kept) + b"]" for metric, kept in rows.items()
    )


def _frame(document: bytes) -> bytes:
    compressed: bytes = _COMPRESSOR.compress(document)
    return ZSTD_STATE + compressed


NO_SHAPE: Final = -1
"""The shape of a recorded event without features (counted for an entity, or not decided)."""


class _Seen(NamedTuple):
    """A recorded event: its second and the features it was decided with, kept serialised as
    its document entry, ``"<event id>":<row>`` (they are only read back for a re-delivery,
    and written with the state every time). The row holds the values only, in the order of
    the state's ``shape`` (a list of feature names, stored once per state, known ones by
    number: ``engine.feature_names``)."""

    second: int
    shape: int
    """Index of the feature names in the state's shapes; ``NO_SHAPE`` when there are none."""
    entry: bytes
    row_from: int
    """Where the row starts in ``entry``."""

    @classmethod
    def of(cls, event_id: str, second: int, shape: int, values: bytes) -> _Seen:
        key = orjson.dumps(event_id) + b":"
        row = b"[%d]" % second if shape == NO_SHAPE else b"[%d,%d,%b]" % (second, shape, values)
        return cls(second, shape, key + row, len(key))  # a new, exact-size object

    def feature_values(self) -> list[int]:
        """The values of its features, in its shape's order (the row's third field)."""
        values: list[int] = orjson.loads(self.entry[self.row_from :])[2]
        return values


class VelocityState:
    """Per-entity buckets + the features each recorded event was decided with."""

    def __init__(self) -> None:
        self._metrics: dict[str, dict[int, _Bucket]] = {}
        self._seen: dict[str, _Seen] = {}
        self._shapes: dict[tuple[str, ...], int] = {}
        """Feature names -> their index. Indices stay put: a shape no event uses any more
        leaves a hole, which the next new shape fills (no recorded event is rewritten)."""
        self._shapes_row: bytes | None = None
        self._blocks: dict[str, int] = {}  # reason code -> expires at (epoch ms)
        self._blocks_from: dict[str, int] = {}  # reason code -> in force from (epoch ms)
        self.last_place: tuple[int, float, float] | None = None  # (at_ms, lat, lon), newest
        self.watermark_s: int | None = None
        self._oldest_s: int | None = None
        """The oldest bucket's second: pruning skips when nothing is due."""
        self._dirty_days: set[int] = set()
        """Days whose part changed since the state was last written (what the horizon drops
        is not written: a part read back is cut at the horizon)."""
        self._head_row: bytes | None = None
        """The head as last written or read: an unchanged head is not written again."""

    def record(self, obs: Observation, horizon_s: int) -> bool:
        """Count ``obs``; False if it was already counted or is older than the horizon."""
        second = obs.at_ms // 1000
        if obs.event_id in self._seen:
            return False
        if self.watermark_s is not None and second <= self.watermark_s - horizon_s:
            return False
        self._metrics.setdefault(obs.metric, {}).setdefault(second, _Bucket()).add(obs)
        if (
            obs.lat is not None
            and obs.lon is not None
            and (self.last_place is None or obs.at_ms >= self.last_place[0])
        ):
            self.last_place = (obs.at_ms, obs.lat, obs.lon)
        self._seen[obs.event_id] = _Seen.of(obs.event_id, second, NO_SHAPE, b"")
        self._dirty_days.add(second // CHUNK_S)
        if self._oldest_s is None or second < self._oldest_s:
            self._oldest_s = second
        if self.watermark_s is None or second > self.watermark_s:
            self.watermark_s = second
            self._prune(second - horizon_s)
        return True

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def features_of(self, event_id: str) -> Features | None:
        """Features remembered for an already-recorded event (None if unknown)."""
        seen = self._seen.get(event_id)
        if seen is None:
            return None
        if seen.shape == NO_SHAPE:
            return {}
        names = next(names for names, shape in self._shapes.items() if shape == seen.shape)
        return dict(zip(names, seen.feature_values(), strict=True))

    def remember(self, event_id: str, features: Features) -> None:
        """Keep the features an event was decided with, for identical re-decisions."""
        second = self._seen[event_id].second
        self._dirty_days.add(second // CHUNK_S)
        if not features:
            self._seen[event_id] = _Seen.of(event_id, second, NO_SHAPE, b"")
            return
        names = tuple(features)
        shape = self._shapes.get(names)
        if shape is None:
            taken = set(self._shapes.values())
            shape = next(index for index in range(len(taken) + 1) if index not in taken)
            self._shapes[names] = shape
            self._shapes_row = None
        values = orjson.dumps(list(features.values()))
        self._seen[event_id] = _Seen.of(event_id, second, shape, values)

    def _shape_names(self) -> list[tuple[str, ...] | None]:
        """Feature names by shape index (None: a hole)."""
        by_index: list[tuple[str, ...] | None] = [None] * (
            max(self._shapes.values(), default=-1) + 1
        )
        for names, shape in self._shapes.items():
            by_index[shape] = names
        return by_index

    def window(self, metric: str, at_ms: int, length_s: int) -> WindowStats:
        buckets = self._metrics.get(metric)
        if not buckets:  # most related metrics a gift or login event reads
            return _NO_EVENTS
        at_s = at_ms // 1000
        low = at_s - length_s
        count = amount = 0
        counterparties: set[str] = set()
        countries: set[str] = set()
        devices: set[str] = set()
        for second, bucket in buckets.items():
            if low < second <= at_s:
                count += bucket.count
                amount += bucket.amount_cents
                counterparties |= bucket.counterparties
                countries |= bucket.countries
                devices |= bucket.devices
        return WindowStats(
            count, saturated(amount), len(counterparties), len(countries), len(devices)
        )

    def windows(self, metric: str, at_ms: int, lengths: list[int]) -> list[WindowStats]:
        """``window`` for each of ``lengths`` (seconds, any order), in one pass over the
        metric's buckets: each bucket goes to the shortest window holding it, and each
        window then adds what the shorter ones hold (an event reads all its windows)."""
        buckets = self._metrics.get(metric)
        if not buckets:
            return [_NO_EVENTS] * len(lengths)
        at_s = at_ms // 1000
        ordered = sorted(set(lengths))
        longest = ordered[-1]
        rings = len(ordered)
        counts = [0] * rings
        amounts = [0] * rings
        counterparties: list[set[str]] = [set() for _ in ordered]
        countries: list[set[str]] = [set() for _ in ordered]
        devices: list[set[str]] = [set() for _ in ordered]
        for second, bucket in buckets.items():
            age = at_s - second
            if age < 0 or age >= longest:
                continue
            ring = 0
            while ordered[ring] <= age:
                ring += 1
            counts[ring] += bucket.count
            amounts[ring] += bucket.amount_cents
            counterparties[ring] |= bucket.counterparties
            countries[ring] |= bucket.countries
            devices[ring] |= bucket.devices
        by_length: dict[int, WindowStats] = {}
        count = amount = 0
        all_counterparties: set[str] = set()
        all_countries: set[str] = set()
        all_devices: set[str] = set()
        for ring in range(rings):
            count += counts[ring]
            amount += amounts[ring]
            all_counterparties |= counterparties[ring]
            all_countries |= countries[ring]
            all_devices |= devices[ring]
            by_length[ordered[ring]] = WindowStats(
                count,
                saturated(amount),
                len(all_counterparties),
                len(all_countries),
                len(all_devices),
            )
        return [by_length[length] for length in lengths]

    def has_value(self, metric: str, kind: str, value: str, at_ms: int, length_s: int) -> bool:
        """``value in self.values(metric, kind, at_ms, length_s)``, without building the set."""
        at_s = at_ms // 1000
        for second, bucket in self._metrics.get(metric, {}).items():
            if at_s - length_s < second <= at_s:
                if kind == "countries":
                    found = value in bucket.countries
                elif kind == "devices":
                    found = value in bucket.devices
                elif kind == "counterparties":
                    found = value in bucket.counterparties
                else:
                    found = value in getattr(bucket, kind)
                if found:
                    return True
        return False

    def previous_second(self, metric: str, at_ms: int) -> int | None:
        """The latest second at or before ``at_ms`` holding an event of ``metric``."""
        at_s = at_ms // 1000
        earlier = [s for s in self._metrics.get(metric, {}) if s <= at_s]
        return max(earlier) if earlier else None

    def amounts(self, metric: str, at_ms: int, length_s: int) -> list[int]:
        """Each recorded event's amount in the window (same window rule as ``window``)."""
        at_s = at_ms // 1000
        return [
            amount
            for second, bucket in self._metrics.get(metric, {}).items()
            if at_s - length_s < second <= at_s
            for amount in bucket.amounts
        ]

    def seconds(self, metric: str, at_ms: int, length_s: int) -> list[int]:
        """The second of each recorded event in the window, one entry per event."""
        at_s = at_ms // 1000
        return [
            second
            for second, bucket in self._metrics.get(metric, {}).items()
            if at_s - length_s < second <= at_s
            for _ in range(bucket.count)
        ]

    def values(self, metric: str, kind: str, at_ms: int, length_s: int) -> set[str]:
        """Distinct ``countries``, ``devices`` or ``counterparties`` seen in the window."""
        at_s = at_ms // 1000
        found: set[str] = set()
        for second, bucket in self._metrics.get(metric, {}).items():
            if at_s - length_s < second <= at_s:
                found |= getattr(bucket, kind)
        return found

    def block(self, reason: str, until_ms: int, from_ms: int = 0) -> None:
        """Block the entity from ``from_ms`` until ``until_ms``, both event time: an event
        that happened before the block was placed and arrives late is not under it. Blocks
        for the same reason merge (the earliest start, the latest expiry)."""
        if reason not in self._blocks:
            self._blocks_from[reason] = from_ms
        elif reason in self._blocks_from:  # absent: a block kept by an older state, from always
            self._blocks_from[reason] = min(from_ms, self._blocks_from[reason])
        self._blocks[reason] = max(until_ms, self._blocks.get(reason, 0))

    def block_expiry(self, reason: str) -> int | None:
        """When the latest block for ``reason`` ends or ended (epoch ms; None: none kept)."""
        return self._blocks.get(reason)

    def active_blocks(self, at_ms: int) -> dict[str, int]:
        """Blocks in force at ``at_ms`` (event time), reason -> expiry."""
        starts = self._blocks_from
        return {
            reason: until
            for reason, until in self._blocks.items()
            if until > at_ms and starts.get(reason, 0) <= at_ms
        }

    def bucket_count(self) -> int:
        return sum(len(buckets) for buckets in self._metrics.values())

    def _prune(self, cutoff_s: int) -> None:
        # Every recorded event has a bucket at its second and both are dropped together, so
        # the oldest bucket says whether anything is due.
        if self._oldest_s is None or self._oldest_s <= cutoff_s:
            for metric, buckets in list(self._metrics.items()):
                for second in [s for s in buckets if s <= cutoff_s]:
                    del buckets[second]
                if not buckets:
                    del self._metrics[metric]
            for event_id in [e for e, seen in self._seen.items() if seen.second <= cutoff_s]:
                del self._seen[event_id]
            self._drop_unused_shapes()
            self._oldest_s = self._oldest_bucket()
        for reason in [r for r, until in self._blocks.items() if until // 1000 <= cutoff_s]:
            del self._blocks[reason]
            self._blocks_from.pop(reason, None)

    def _drop_unused_shapes(self) -> None:
        """Forget feature names no recorded event uses any more (the rules changed, or a
        list hit named a value); the others keep their index."""
        used = {seen.shape for seen in self._seen.values()} - {NO_SHAPE}
        if len(used) == len(self._shapes):
            return
        self._shapes = {names: shape for names, shape in self._shapes.items() if shape in used}
        self._shapes_row = None

    def _oldest_bucket(self) -> int | None:
        return min((min(buckets) for buckets in self._metrics.values()), default=None)

    def changed_parts(self) -> list[StatePart]:
        """The parts changed since the state was last written or read (``CHUNKED_STATE``):
        each changed day's buckets and recorded events, and the head when it changed
        (always on a state's first write: a state without a head is no state). What they
        hold is marked written."""
        parts: list[StatePart] = []
        if self._dirty_days:
            documents = self._day_documents(self._dirty_days)
            parts += [(day_part(day), _frame(documents[day])) for day in sorted(documents)]
            self._dirty_days.clear()
        head = self._head_document()
        if head != self._head_row:
            compressed: bytes = _COMPRESSOR.compress(head)
            parts.append((b"", CHUNKED_STATE + compressed))
            self._head_row = head
        return parts

    def _day_documents(self, days: set[int]) -> dict[int, bytes]:
        """The part of each of ``days`` that holds anything: ``{"d": day, "m": {metric:
        rows}, "s": {event id: row}}`` as ``to_document`` writes them, and ``"p"`` in the
        last place's day."""
        rows: dict[int, dict[str, list[bytes]]] = {}
        for metric, buckets in self._metrics.items():
            changed = [(second, b) for second, b in buckets.items() if second // CHUNK_S in days]
            for second, bucket in sorted(changed):
                day = second // CHUNK_S
                rows.setdefault(day, {}).setdefault(metric, []).append(bucket.dump(second))
        entries: dict[int, list[bytes]] = {}
        for seen in self._seen.values():
            day = seen.second // CHUNK_S
            if day in days:
                entries.setdefault(day, []).append(seen.entry)
        place = self.last_place
        place_day = None if place is None else place[0] // 1000 // CHUNK_S
        documents: dict[int, bytes] = {}
        for day in rows.keys() | entries.keys():
            metrics = _metrics_object(rows.get(day, {}))
            seen_rows = b",".join(entries.get(day, []))
            document = b'{"d":%d,"m":{%b},"s":{%b}' % (day, metrics, seen_rows)
            if day == place_day:
                document += b',"p":' + orjson.dumps(place)
            documents[day] = document + b"}"
        return documents

    def _head_document(self) -> bytes:
        """What is not kept by day: the shapes, the blocks, and the last place once a newer
        day may reuse its day's slot. The watermark is the newest bucket's second (the
        horizon never drops it), so the head changes only with the shapes, a block or,
        rarely, the place."""
        head: dict[str, Any] = {}
        if self._blocks:
            head["b"], head["bf"] = self._blocks, self._blocks_from
        place, newest = self.last_place, self.watermark_s
        if (
            place is not None
            and newest is not None
            and newest // CHUNK_S - place[0] // 1000 // CHUNK_S >= DAY_SLOTS - 1
        ):
            head["p"] = place
        rest = orjson.dumps(head)
        if not self._shapes:
            return rest
        return b'{"k":' + self._shapes_document() + (b"," + rest[1:] if head else b"}")

    def to_bytes(self) -> bytes:
        """The whole state as one zstd frame, the form states were stored in before they
        were kept in parts (ADR 0002); still read, and what tests compare states by."""
        return _frame(self.to_document())

    def to_document(self) -> bytes:
        """Compact JSON, as ``orjson.dumps`` of the document would write it, joined from the
        rows of buckets and recorded events kept serialised (most did not change since the
        last write); the shapes, blocks and place only when there are some."""
        metrics = _metrics_object(
            {
                metric: [b.dump(s) for s, b in sorted(buckets.items())]
                for metric, buckets in self._metrics.items()
            }
        )
        seen = b",".join([seen.entry for seen in self._seen.values()])
        parts = [
            b'{"w":',
            orjson.dumps(self.watermark_s),
            b',"m":{',
            metrics,
            b'},"s":{',
            seen,
            b"}",
        ]
        if self._shapes:
            parts += [b',"k":', self._shapes_document()]
        if self._blocks:
            parts += [
                b',"b":',
                orjson.dumps(self._blocks),
                b',"bf":',
                orjson.dumps(self._blocks_from),
            ]
        if self.last_place is not None:
            parts += [b',"p":', orjson.dumps(self.last_place)]
        parts.append(b"}")
        return b"".join(parts)

    def _shapes_document(self) -> bytes:
        if self._shapes_row is None:
            stored = [None if names is None else _numbered(names) for names in self._shape_names()]
            self._shapes_row = _kept(orjson.dumps(stored))
        return self._shapes_row

    @classmethod
    def from_store(
        cls, key: bytes, get: Callable[[bytes], bytes | None], horizon_s: int
    ) -> VelocityState:
        """The state under ``key`` of a store ``get`` reads: kept in parts, or as one
        document as written before (then every part is written at its next write). The
        parts of the newest ``DAY_SLOTS`` days are read (an older one is a slot not reused
        yet) and cut at ``horizon_s`` behind the newest event, as the state was when it
        last dropped what fell behind. A day the store lacks (its write lost with a batch
        not acknowledged) reads as empty: that batch's events are read and counted again."""
        data = get(key)
        if not data or data[:1] != CHUNKED_STATE:
            state = cls.from_bytes(data)
            state._dirty_days = {second // CHUNK_S for second in state._seconds()}
            return state
        head_row = _decompressed(data[1:])
        head = orjson.loads(head_row)
        parts = [
            orjson.loads(document_of(stored))
            for slot in range(DAY_SLOTS)
            if (stored := get(key + day_part(slot))) is not None
        ]
        newest_day = max((part["d"] for part in parts), default=0)
        metrics: dict[str, list[Any]] = {}
        seen: dict[str, Any] = {}
        places: list[list[Any]] = [head["p"]] if "p" in head else []
        for part in sorted(parts, key=lambda part: int(part["d"])):
            if part["d"] > newest_day - DAY_SLOTS:
                for metric, rows in part["m"].items():
                    metrics.setdefault(metric, []).extend(rows)
                seen.update(part["s"])
                if "p" in part:  # an earlier day's may be older than the last place
                    places.append(part["p"])
        seconds = [row[0] for rows in metrics.values() for row in rows]
        head["w"] = max(seconds) if seconds else None
        head["m"], head["s"] = metrics, seen
        if places:
            head["p"] = max(places, key=lambda place: place[0])
        state = cls.of_document(head)
        if state.watermark_s is not None:
            state._prune(state.watermark_s - horizon_s)
        state._head_row = head_row
        return state

    def _seconds(self) -> set[int]:
        """Every second holding a bucket or a recorded event."""
        held = {second for buckets in self._metrics.values() for second in buckets}
        return held | {seen.second for seen in self._seen.values()}

    @classmethod
    def from_bytes(cls, data: bytes | None) -> VelocityState:
        """A state stored as one document, in any form written so far."""
        if not data:
            return cls()
        return cls.of_document(orjson.loads(document_of(data)))

    @classmethod
    def of_document(cls, raw: dict[str, Any]) -> VelocityState:
        """A state from its parsed document (a whole one, or a head with its parts merged)."""
        state = cls()
        state.watermark_s = raw["w"]
        for metric, rows in raw["m"].items():
            state._metrics[metric] = {row[0]: _Bucket.of_row(row) for row in rows}
        shapes = enumerate(raw.get("k", []))
        state._shapes = {_named(names): index for index, names in shapes if names is not None}
        for event_id, (second, *rest) in raw["s"].items():
            if rest and isinstance(rest[0], dict):  # written before shapes: [second, features]
                state._seen[event_id] = _Seen.of(event_id, second, NO_SHAPE, b"")
                state.remember(event_id, rest[0])
            else:
                shape, values = (rest[0], orjson.dumps(rest[1])) if rest else (NO_SHAPE, b"")
                state._seen[event_id] = _Seen.of(event_id, second, shape, values)
        state._oldest_s = state._oldest_bucket()
        state._blocks = dict(raw.get("b", {}))
        state._blocks_from = dict(raw.get("bf", {}))  # absent in older states: from always
        place = raw.get("p")
        state.last_place = (place[0], place[1], place[2]) if place else None
        return state
