"""Velocity windows are exact: compared with a brute-force recomputation from the input."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import lz4.block
import orjson
import pytest

from config.rules import load_rules, seed_rules_path
from engine.feature_names import KNOWN_FEATURE_NAMES
from engine.replay import Replay
from engine.scenarios import generate, listed_entries
from engine.velocity import (
    CHUNKED_STATE,
    DAY_SLOTS,
    MAX_SUM,
    Observation,
    VelocityState,
    WindowStats,
    day_part,
)
from streams.views import default_list_view

WINDOWS = {"5m": 300, "1h": 3600, "24h": 86_400, "30d": 2_592_000}
HORIZON = WINDOWS["30d"]


def _inside(
    history: list[Observation], at_ms: int, metric: str, length_s: int
) -> list[Observation]:
    """Events recorded so far, of ``metric``, whose second lies in (t - W, t]."""
    at_s = at_ms // 1000
    return [o for o in history if o.metric == metric and at_s - length_s < o.at_ms // 1000 <= at_s]


def brute_force(history: list[Observation], at_ms: int, metric: str, length_s: int) -> WindowStats:
    inside = _inside(history, at_ms, metric, length_s)
    return WindowStats(
        count=len(inside),
        amount_cents=sum(o.amount_cents for o in inside),
        counterparties=len({o.counterparty for o in inside if o.counterparty}),
        countries=len({o.country for o in inside if o.country}),
        devices=len({o.device for o in inside if o.device}),
    )


def _stream(seed: int, size: int) -> list[Observation]:
    """Mostly increasing times with jitter (out-of-order), bursts, gaps, and duplicates."""
    rng = random.Random(seed)
    at = 1_700_000_000_000
    events: list[Observation] = []
    for n in range(size):
        at += rng.choice(
            [0, 200, 1_000, 45_000, 3_600_000, 40 * 86_400_000 if n == size // 2 else 5]
        )
        jitter = rng.choice([0, 0, 0, -2_000, -90_000])
        events.append(
            Observation(
                event_id=f"e{n}",
                at_ms=at + jitter,
                metric=rng.choice(["tx", "tx", "login_failed"]),
                amount_cents=rng.randrange(1, 10_000_000),
                counterparty=rng.choice([None, "pix-a", "pix-b", "wallet-c"]),
                country=rng.choice([None, "BR", "AR", "US"]),
                device=rng.choice([None, "d1", "d2"]),
            )
        )
        if rng.random() < 0.1:
            events.append(events[rng.randrange(len(events))])  # re-delivery
    return events


@pytest.mark.parametrize("seed", range(8))
def test_windows_equal_brute_force_after_every_event(seed: int) -> None:
    state = VelocityState()
    counted: list[Observation] = []
    newest = None
    for obs in _stream(seed, 400):
        expected_new = obs.event_id not in {o.event_id for o in counted} and (
            newest is None or obs.at_ms // 1000 > newest - HORIZON
        )
        assert state.record(obs, HORIZON) is expected_new
        if expected_new:
            counted.append(obs)
            newest = max(newest or 0, obs.at_ms // 1000)
        # The state keeps the horizon behind the newest event; older events are forgotten.
        kept = [o for o in counted if o.at_ms // 1000 > (newest or 0) - HORIZON]
        for name, length in WINDOWS.items():
            for metric in ("tx", "login_failed", "never_seen"):
                assert state.window(metric, obs.at_ms, length) == brute_force(
                    kept, obs.at_ms, metric, length
                ), (name, metric)
                inside = _inside(kept, obs.at_ms, metric, length)
                assert sorted(state.amounts(metric, obs.at_ms, length)) == sorted(
                    o.amount_cents for o in inside
                )
                assert sorted(state.seconds(metric, obs.at_ms, length)) == sorted(
                    o.at_ms // 1000 for o in inside
                )


def test_state_round_trips_through_bytes() -> None:
    state = VelocityState()
    for obs in _stream(3, 200):
        state.record(obs, HORIZON)
    state.remember("e1", {"tx.count.5m": 3})
    copy = VelocityState.from_bytes(state.to_bytes())
    assert copy.to_bytes() == state.to_bytes()
    assert copy.features_of("e1") == {"tx.count.5m": 3}
    last = max(o.at_ms for o in _stream(3, 200))
    for length in WINDOWS.values():
        assert copy.window("tx", last, length) == state.window("tx", last, length)


def test_a_lone_event_s_bucket_is_stored_short_and_reads_back_whole() -> None:
    """Most buckets hold one event: ``[second, amount, counterparty, country, device]``;
    a bucket of several keeps the full row."""
    state = VelocityState()
    state.record(Observation("a", 1_000, "tx", 500, "pix:1", "BR", "d1"), HORIZON)
    state.record(Observation("b", 2_000, "tx", 700), HORIZON)
    state.record(Observation("c", 3_000, "tx", 100, "pix:1", "AR", "d1"), HORIZON)
    state.record(Observation("d", 3_500, "tx", 200, "pix:2", "AR", "d2"), HORIZON)
    document = state.to_document()
    assert b'[1,500,"pix:1","BR","d1"]' in document
    assert b"[2,700,null,null,null]" in document
    assert b'[3,2,300,["pix:1","pix:2"],["AR"],["d1","d2"],[100,200]]' in document
    for stored in (document, state.to_bytes()):
        copy = VelocityState.from_bytes(stored)
        assert copy.to_document() == document
        for length in (1, 2, 3, 60):
            assert copy.window("tx", 3_000, length) == state.window("tx", 3_000, length)
        assert copy.amounts("tx", 3_000, 60) == [500, 700, 100, 200]
        assert copy.values("tx", "countries", 3_000, 60) == {"BR", "AR"}


def test_the_document_is_what_orjson_writes_for_it() -> None:
    """Joined by hand from kept rows, the document is the JSON orjson writes for the same
    value, every field present (event ids needing escapes, blocks, a place, shapes)."""
    state = VelocityState()
    state.record(Observation('quote"back\\slash-ç', 1_000, "tx", 5, "pix:1", "BR", "d"), HORIZON)
    state.record(Observation("placed", 2_000, "login_failed", lat=-23.5, lon=-46.6), HORIZON)
    state.remember("placed", {"tx.count.5m": 2, "list.block.email.HIGH.manual.a***@x": 1})
    state.block("IP_RATE", 9_000, 2_000)
    document = state.to_document()
    assert orjson.dumps(orjson.loads(document)) == document
    assert set(orjson.loads(document)) == {"w", "m", "s", "k", "b", "bf", "p"}
    assert VelocityState.from_bytes(state.to_bytes()).to_document() == document


def test_a_state_is_stored_compressed_and_the_earlier_forms_still_load() -> None:
    """States are written as zstd frames; one written as an LZ4 block or as plain JSON (as
    before) reads the same. A document leaves out the shapes, blocks and place when it has
    none."""
    state = VelocityState()
    state.record(Observation("lone", 1_000, "tx", 100), HORIZON)
    assert state.to_document() == b'{"w":1,"m":{"tx":[[1,100,null,null,null]]},"s":{"lone":[1]}}'
    for obs in _stream(1, 200):
        if state.record(obs, HORIZON):
            state.remember(obs.event_id, {"tx.count.5m": 1, "tx.amount_cents.1h": 250})
    stored = state.to_bytes()
    as_lz4 = b"\x01" + lz4.block.compress(state.to_document())
    assert stored.startswith(b"\x02") and len(stored) < len(as_lz4) * 0.8
    for form in (stored, as_lz4, state.to_document()):
        assert VelocityState.from_bytes(form).to_document() == state.to_document()


def _replayed(steps: list[tuple[Observation, dict[str, int]]]) -> VelocityState:
    state = VelocityState()
    for obs, features in steps:
        if state.record(obs, HORIZON):
            state.remember(obs.event_id, features)
    return state


def test_serialised_rows_kept_between_writes_are_never_stale() -> None:
    """A state written after every event (rows of unchanged buckets and events reused) writes
    the same bytes as the same state built afresh and written once."""
    written, steps = VelocityState(), []
    for n, obs in enumerate(_stream(5, 300)):
        features = {"tx.count.5m": n % 7, "n": n}
        steps.append((obs, features))
        if written.record(obs, HORIZON):
            written.remember(obs.event_id, features)
        written.to_bytes()
        if n % 50 == 49:
            assert written.to_bytes() == _replayed(steps).to_bytes(), n


def test_all_windows_at_once_equal_each_window_read_alone() -> None:
    """One pass for every window (lengths unsorted, repeated, or holding nothing) gives
    what reading each window alone gives, on out-of-order streams with re-deliveries."""
    lengths = [3600, 300, 2_592_000, 86_400, 300, 1, 604_800]
    for seed in range(4):
        state = VelocityState()
        for n, obs in enumerate(_stream(seed, 400)):
            state.record(obs, HORIZON)
            if n % 7 == 0:
                for metric in ("tx", "login_failed", "absent"):
                    for at_ms in (obs.at_ms, obs.at_ms - 120_000, obs.at_ms + 3_600_000):
                        alone = [state.window(metric, at_ms, length) for length in lengths]
                        assert state.windows(metric, at_ms, lengths) == alone, (seed, n)


def _write_parts(store: dict[bytes, bytes], key: bytes, state: VelocityState) -> list[bytes]:
    """Store the parts the state changed, as the scoring agent does; the keys touched."""
    touched = []
    for suffix, value in state.changed_parts():
        touched.append(key + suffix)
        store[key + suffix] = value
    return touched


def _held_days(state: VelocityState) -> set[int]:
    document = orjson.loads(state.to_document())
    seconds = {row[0] for rows in document["m"].values() for row in rows}
    return {second // 86_400 for second in seconds | {e[0] for e in document["s"].values()}}


def test_a_state_kept_in_parts_and_written_after_every_event_reads_back_whole() -> None:
    """Written part by part after every event (out of order, over 40 days with a horizon
    of three: day slots are reused), and read back from time to time to go on from there,
    the store holds the state as it is: a slot not reused yet and what the horizon dropped
    are not read back. Its last place stays known after its day's slot is reused."""
    store: dict[bytes, bytes] = {}
    key, horizon_s = b"user:u1", 3 * 86_400
    state = VelocityState()
    start = _stream(5, 1)[0].at_ms
    stream = [
        obs._replace(at_ms=start + (obs.at_ms - start) * 20, lat=n % 60 - 30.0, lon=-40.0)
        if n % 9 == 0 or n > 290  # the last places fall on the days before the last gap
        else obs._replace(at_ms=start + (obs.at_ms - start) * 20)
        for n, obs in enumerate(_stream(5, 300))
    ]
    stream.append(Observation("after a gap", stream[-1].at_ms + 40 * 86_400_000, "tx", 5))
    days_written: set[int] = set()
    for n, obs in enumerate(stream):
        if state.record(obs, horizon_s):
            state.remember(obs.event_id, {"tx.count.5m": n % 7, f"list.hit.{n % 3}": n})
        if n % 40 == 0:
            state.block(f"R{n % 80}", obs.at_ms + 3_600_000, obs.at_ms)
        days_written |= _held_days(state)
        _write_parts(store, key, state)
        if n % 25 == 24 or n == len(stream) - 1:
            read = VelocityState.from_store(key, store.get, horizon_s)
            # The same document, but for the order of recorded events across days.
            assert orjson.loads(read.to_document()) == orjson.loads(state.to_document()), n
            state = read
    assert max(days_written) - min(days_written) > 2 * DAY_SLOTS
    assert state.last_place is not None and state.last_place[0] < stream[-2].at_ms + 1
    assert set(store) == {key} | {key + day_part(day) for day in range(DAY_SLOTS)}


def test_an_event_writes_its_day_and_the_head_only_when_a_block_changes() -> None:
    day_ms = 86_400_000
    state, store, key = VelocityState(), {}, b"card:c1"
    for day in range(5):
        state.record(Observation(f"e{day}", day * day_ms + 1_000, "tx", 100), HORIZON)
        state.remember(f"e{day}", {"tx.count.5m": 1})
    assert len(_write_parts(store, key, state)) == 6  # five days and the head
    placed = Observation("again", 4 * day_ms + 2_000, "tx", 5, lat=-23.5, lon=-46.6)
    state.record(placed, HORIZON)
    assert _write_parts(store, key, state) == [key + day_part(4)]
    assert _write_parts(store, key, state) == []
    state.record(Observation("next day", 5 * day_ms, "tx", 5), HORIZON)
    assert _write_parts(store, key, state) == [key + day_part(5)]
    state.block("R", 6 * day_ms, 5 * day_ms)  # the head alone changes
    assert _write_parts(store, key, state) == [key]
    state.remember("next day", {"tx.count.5m": 2, "list.hit": 1})  # so do the shapes
    assert _write_parts(store, key, state) == [key + day_part(5), key]
    del store[key + day_part(2)]  # a part lost with its batch reads as an empty day
    read = VelocityState.from_store(key, store.get, HORIZON)
    assert "e2" not in read and {"e0", "e1", "e3", "e4", "again", "next day"} <= set(_ids(read))
    assert read.active_blocks(5 * day_ms) == {"R": 6 * day_ms}
    assert read.watermark_s == 5 * 86_400 and read.last_place == (placed.at_ms, -23.5, -46.6)


def _ids(state: VelocityState) -> list[str]:
    return list(orjson.loads(state.to_document())["s"])


def test_a_state_stored_as_one_document_is_read_and_then_kept_in_parts() -> None:
    """A state written whole (the form before parts) reads the same; its next write puts
    every part and the head in its place, and reading a head as a whole state says so."""
    state = _replayed([(obs, {"tx.count.5m": 2}) for obs in _stream(3, 120)])
    key = b"device:d1"
    store = {key: state.to_bytes()}
    read = VelocityState.from_store(key, store.get, HORIZON)
    assert read.to_document() == state.to_document()
    touched = _write_parts(store, key, read)
    assert set(touched) == set(store) and store[key][:1] == CHUNKED_STATE
    assert len(store) == len(_held_days(state)) + 1
    assert VelocityState.from_store(key, store.get, HORIZON).to_document() == state.to_document()
    with pytest.raises(ValueError, match="kept in parts"):
        VelocityState.from_bytes(store[key])


def test_kept_rows_cost_about_their_size_in_memory() -> None:
    """States stay cached for long: a remembered event's features and a bucket's row must not
    hold on to the serialiser's working buffer (~4 KB per output of orjson, however small)."""
    features = {f"tx.amount_cents.window{n}": 10_000_000 + n for n in range(46)}
    state = VelocityState()
    events = 200
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(events):
            state.record(Observation(f"e{n}", n * 1000, "tx", 100 + n, "pix", "BR", "d"), HORIZON)
            state.remember(f"e{n}", features)
            state.to_bytes()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # ~1.7 KB per event: its bucket (three sets, a list), its row and its recorded id.
    assert grown < events * 3_000, grown


def test_a_state_read_back_still_drops_what_falls_behind_the_horizon() -> None:
    day_ms = 86_400_000
    state = VelocityState()
    for n in range(10):
        state.record(Observation(f"e{n}", n * day_ms, "tx", 100), HORIZON)
    copy = VelocityState.from_bytes(state.to_bytes())
    copy.record(Observation("late", 35 * day_ms, "tx", 100), HORIZON)
    assert copy.bucket_count() == 5  # days 6-9 and 35: (35 - 30, 35]
    assert "e5" not in copy and "e6" in copy


def test_memory_is_bounded_by_the_horizon() -> None:
    state = VelocityState()
    day_ms = 86_400_000
    for n in range(400):  # one event a day for 400 days
        state.record(Observation(f"e{n}", n * day_ms, "tx", 100), HORIZON)
    assert state.bucket_count() == 30  # the last 30 days only
    assert "e0" not in state and "e399" in state
    # An event older than the horizon behind the newest one is ignored, not counted.
    assert state.record(Observation("late", 300 * day_ms, "tx", 100), HORIZON) is False


def test_empty_state_from_nothing() -> None:
    assert VelocityState.from_bytes(None).window("tx", 0, 60) == WindowStats(0, 0, 0, 0, 0)


def test_last_place_is_the_newest_located_event_and_survives_bytes() -> None:
    state = VelocityState()
    state.record(Observation("a", 2_000, "tx", lat=1.0, lon=2.0), HORIZON)
    state.record(Observation("b", 1_000, "tx", lat=5.0, lon=6.0), HORIZON)  # older: ignored
    state.record(Observation("c", 3_000, "tx"), HORIZON)  # no place: ignored
    assert state.last_place == (2_000, 1.0, 2.0)
    assert VelocityState.from_bytes(state.to_bytes()).last_place == (2_000, 1.0, 2.0)


def test_states_written_before_amounts_were_kept_still_load() -> None:
    """Rows of six fields (no per-event amounts): a lone event's amount is its bucket's total."""
    old = b'{"w":100,"m":{"tx":[[90,1,500,[],[],[]],[100,2,900,[],[],[]]]},"s":{},"b":{}}'
    state = VelocityState.from_bytes(old)
    assert state.window("tx", 100_000, 60).amount_cents == 1_400
    assert state.amounts("tx", 100_000, 60) == [500]  # two events of 900 in all: unknown split


def test_feature_names_are_stored_once_per_state() -> None:
    state = VelocityState()
    for n in range(20):
        state.record(Observation(f"e{n}", n * 1000, "tx", 100), HORIZON)
        state.remember(f"e{n}", {"tx.count.5m": n, "tx.amount_cents.1h": 100 * n})
    written = state.to_document()
    assert b"tx.count.5m" not in written  # a known name: by its number, once
    numbers = [KNOWN_FEATURE_NAMES.index(n) for n in ("tx.count.5m", "tx.amount_cents.1h")]
    assert written.count(b'"k":[[%d,%d]]' % tuple(numbers)) == 1
    copy = VelocityState.from_bytes(written)
    assert copy.features_of("e7") == {"tx.count.5m": 7, "tx.amount_cents.1h": 700}
    assert copy.to_document() == written


def test_names_no_recorded_event_uses_are_dropped_with_it() -> None:
    """Feature names change with the rules or a list hit; once the events that had them
    fall behind the horizon their names go, and the other events keep theirs."""
    day_ms = 86_400_000
    state = VelocityState()
    state.record(Observation("old", 0, "tx", 100), HORIZON)
    state.remember("old", {"list.block.email.HIGH.manual.a***@x": 1, "tx.count.5m": 1})
    state.record(Observation("mid", 2 * day_ms, "tx", 100), HORIZON)
    state.remember("mid", {"tx.count.5m": 2})
    state.record(Observation("empty", 2 * day_ms, "tx", 100), HORIZON)
    state.record(Observation("new", 31 * day_ms, "tx", 100), HORIZON)  # "old" falls behind
    state.remember("new", {"tx.count.5m": 1, "tx.amount_cents.1h": 5})
    assert state.features_of("old") is None
    assert state.features_of("mid") == {"tx.count.5m": 2}
    assert state.features_of("empty") == {}
    assert state.features_of("new") == {"tx.count.5m": 1, "tx.amount_cents.1h": 5}
    written = state.to_document()
    assert b"list.block" not in written
    # "mid" keeps its shape; "new" took the one "old" left.
    assert orjson.loads(written)["s"] == {
        "mid": [172_800, 1, [2]],
        "empty": [172_800],
        "new": [2_678_400, 0, [1, 5]],
    }
    copy = VelocityState.from_bytes(written)
    replayed = _replayed_by_name(state, ["mid", "empty", "new"])
    for event_id in ("mid", "empty", "new"):
        assert copy.features_of(event_id) == replayed.features_of(event_id)


def _replayed_by_name(state: VelocityState, event_ids: list[str]) -> VelocityState:
    """A state holding only ``event_ids`` of ``state``, recorded afresh in that order."""
    copy = VelocityState()
    day_ms = 86_400_000
    for event_id, day in zip(event_ids, [2, 2, 31], strict=True):
        copy.record(Observation(event_id, day * day_ms, "tx", 100), HORIZON)
        features = state.features_of(event_id)
        if features:
            copy.remember(event_id, features)
    return copy


def test_states_written_with_names_in_every_row_still_load() -> None:
    """Rows of ``[second, features]``, as written before the names were kept once."""
    old = (
        b'{"w":2,"m":{"tx":[[1,1,500,[],[],[],[500]],[2,1,700,[],[],[],[700]]]},'
        b'"s":{"e1":[1,{"tx.count.5m":1}],"e2":[2,{}]},"b":{},"p":null}'
    )
    state = VelocityState.from_bytes(old)
    assert state.features_of("e1") == {"tx.count.5m": 1}
    assert state.features_of("e2") == {}
    assert state.window("tx", 2_000, 60).count == 2
    assert b'"k":[[%d]]' % KNOWN_FEATURE_NAMES.index("tx.count.5m") in state.to_document()
    assert VelocityState.from_bytes(state.to_bytes()).features_of("e1") == {"tx.count.5m": 1}


def test_states_with_feature_names_in_full_still_load() -> None:
    """Shapes as written before known names were stored by number."""
    old = (
        b'{"w":2,"m":{"tx":[[1,1,500,[],[],[],[500]]]},"s":{"e1":[1,0,[3,9]]},'
        b'"k":[["tx.count.5m","list.block.email.HIGH.MANUAL.a***@x.com"]],"b":{},"p":null}'
    )
    state = VelocityState.from_bytes(old)
    features = {"tx.count.5m": 3, "list.block.email.HIGH.MANUAL.a***@x.com": 9}
    assert state.features_of("e1") == features
    number = KNOWN_FEATURE_NAMES.index("tx.count.5m")
    assert b'"k":[[%d,"list.block.email.HIGH.MANUAL.a***@x.com"]]' % number in state.to_document()
    assert VelocityState.from_bytes(state.to_bytes()).features_of("e1") == features


def test_a_feature_number_past_the_known_names_reads_without_failing() -> None:
    """A state written by a newer version (more known names), read by this one."""
    past = len(KNOWN_FEATURE_NAMES) + 5
    data = b'{"w":1,"m":{},"s":{"e1":[1,0,[4]]},"k":[[%d]],"b":{},"p":null}' % past
    assert VelocityState.from_bytes(data).features_of("e1") == {f"feature#{past}": 4}


# The first names as they were first shipped: a state written since refers to them by number.
FIRST_NAMES = 282
FIRST_NAMES_SHA256 = "bf7d186bac839e915702b4dd63b180d04cd63c502fc6d58446753975b06cef08"


def test_known_feature_names_are_only_ever_appended_to() -> None:
    first = "\n".join(KNOWN_FEATURE_NAMES[:FIRST_NAMES]).encode()
    assert hashlib.sha256(first).hexdigest() == FIRST_NAMES_SHA256
    assert len(set(KNOWN_FEATURE_NAMES)) == len(KNOWN_FEATURE_NAMES)


def test_the_shipped_rules_features_are_stored_by_number() -> None:
    """Every feature the shipped rules compute on a scenario stream is a known name (a list
    hit's feature names the value it matched, and is stored in full)."""
    key = b"names"
    stream = generate(seed=2, users=40, hash_key=key)
    lists = default_list_view(key)
    for entry in listed_entries(key, 40, stream[0].event.occurred_at):
        lists.apply(entry)
    computed: set[str] = set()
    for path in (None, seed_rules_path()):
        rules = load_rules(path) if path else load_rules()
        for replayed in Replay(rules, key, lists, learn=True).run((i.event for i in stream), []):
            computed.update(replayed.decision.features)
    assert len(computed) > 150
    unknown = {name for name in computed - set(KNOWN_FEATURE_NAMES)}
    assert all(name.startswith("list.") for name in unknown), sorted(unknown)


@pytest.mark.parametrize("seed", range(4))
def test_remembered_features_survive_pruning_and_bytes(seed: int) -> None:
    """Random streams (gaps past the horizon, re-deliveries) with features of changing names:
    every recorded event keeps exactly what it was remembered with, in the state and in a copy
    read back from its bytes, and a copy writes the same bytes. A two-hour horizon: events
    fall behind it all along, and with them names other events still use."""
    rng = random.Random(seed)
    horizon = 7_200
    names = [f"tx.count.{n}" for n in range(6)] + ["list.block.email.HIGH.manual.a***@x"]
    names += ["tx.count.5m", "tx.amount_cents.1h", "ml.hour"]  # stored by number
    state, remembered = VelocityState(), {}
    for obs in _stream(seed, 300):
        if not state.record(obs, horizon):
            continue
        if rng.random() < 0.8:
            keys = rng.sample(names, rng.randrange(0, len(names)))
            features = {key: rng.randrange(0, 1_000) for key in keys}
            state.remember(obs.event_id, features)
            remembered[obs.event_id] = features
        else:
            remembered[obs.event_id] = {}
        written = state.to_bytes()
        copy = VelocityState.from_bytes(written)
        assert copy.to_bytes() == written
        for event_id, features in remembered.items():
            if event_id in state:
                assert state.features_of(event_id) == features
                assert list(copy.features_of(event_id) or {}) == list(features)
            else:
                assert copy.features_of(event_id) is None


def test_amount_sums_saturate_at_the_largest_avro_long_and_the_state_still_serialises() -> None:
    state = VelocityState()
    for n in range(4):
        state.record(Observation(f"e{n}", at_ms=1_000 + n, metric="tx", amount_cents=2**62), 3600)
    assert state.window("tx", at_ms=2_000, length_s=60).amount_cents == MAX_SUM
    again = VelocityState.from_bytes(state.to_bytes())
    assert again.window("tx", at_ms=2_000, length_s=60) == state.window("tx", 2_000, 60)


@pytest.mark.parametrize(
    "stored",
    [
        b"\x02\x28\xb5\x2f\xfd\xe0" + (2**31).to_bytes(8, "little") + b"garbage",  # zstd
        b"\x01\xff\xff\xff\x7fgarbage",  # LZ4
    ],
)
def test_a_damaged_state_claiming_gigabytes_is_refused_before_allocating_them(
    stored: bytes,
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="claims"):
            VelocityState.from_bytes(stored)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()
