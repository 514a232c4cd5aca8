"""The scoring agent's per-batch logic, with a dictionary in place of its Faust table: where
an entity's count is made (here or through the re-route topic) and when cached states are
read again from the table."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zstandard
from aiokafka.structs import RecordMetadata, TopicPartition
from faust.types import TP

from agents.scoring import Scorer, SharedViews, persist_offsets
from config.rules import load_rules
from engine.admission import subject_of
from engine.entities import entity_keys, keyed_id
from engine.velocity import Observation, VelocityState, day_part
from schemas.codec import WireCodec
from schemas.models import Alert, DeadLetter, Decision, FraudEvent
from streams.partitioning import owner_partition
from streams.topics import Topics
from tests import factories

PARTITIONS = 4
HASH_KEY = b"unit-test-key"
TOPICS = Topics("unit")
CODEC = WireCodec()
RULES = load_rules()


class _Message:
    def __init__(self, topic: str, key: bytes, value: bytes) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.partition = owner_partition(key, PARTITIONS)
        self.timestamp, self.offset = datetime.now(UTC).timestamp(), 0


class _Record:
    def __init__(self, message: _Message) -> None:
        self.message = message


def _scorer(table: dict[bytes, bytes]) -> Scorer:
    views = SharedViews.starting(RULES, HASH_KEY)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    return Scorer(TOPICS, CODEC, clock, PARTITIONS, table, views, HASH_KEY, None, 1_000)


def _score(scorer: Scorer, owned: frozenset[int], *events: object) -> list[tuple[str, bytes]]:
    """One batch of the events (as input records keyed by subject); its outputs' topics and keys."""
    batch = scorer.begin(owned)
    for event in events:
        key = subject_of(event).key.encode()  # type: ignore[arg-type]
        value = CODEC.encode(event)  # type: ignore[arg-type]
        scorer.handle(batch, _Record(_Message(TOPICS.transactions, key, value)), RULES)  # type: ignore[arg-type]
    scorer.write_states(batch)
    return [(topic, key) for topic, key, _, _, _ in batch.outputs]


def test_a_worker_owning_every_partition_counts_the_entities_in_the_same_batch() -> None:
    table: dict[bytes, bytes] = {}
    event = factories.transaction(user_id="u-local")
    outputs = _score(_scorer(table), frozenset(range(PARTITIONS)), event)

    assert [t for t, _ in outputs] == [TOPICS.decisions]  # nothing re-routed
    for key in entity_keys(event, RULES.entities, HASH_KEY):
        assert event.event_id in VelocityState.from_store(
            key.encode(), table.get, RULES.velocity.horizon_s
        )


def test_every_state_written_goes_to_the_changelog_on_its_key_s_partition() -> None:
    table: dict[bytes, bytes] = {}
    scorer = _scorer(table)
    batch = scorer.begin(frozenset(range(PARTITIONS)))
    events = [factories.transaction(user_id=user) for user in ("u-a", "u-b", "u-a")]
    for event in events:
        key = subject_of(event).key.encode()
        record = _Record(_Message(TOPICS.transactions, key, CODEC.encode(event)))
        scorer.handle(batch, record, RULES)  # type: ignore[arg-type]
    scorer.write_states(batch)

    # One record per stored key: each state's head and its parts, of subjects and entities.
    assert len(batch.changelog) == len(table) > 2
    assert {key: value for key, value, _ in batch.changelog} == table
    for key, _, partition in batch.changelog:
        state_key = key.split(b"\x00")[0]  # a part is written on its state's partition
        assert partition == owner_partition(state_key, PARTITIONS)
    assert {key.split(b"\x00")[0] for key in table} == {
        subject_of(event).key.encode() for event in events
    } | {key.encode() for event in events for key in entity_keys(event, RULES.entities, HASH_KEY)}


class _OffsetsKept:
    """What a Faust store is told of its changelog's offsets."""

    def __init__(self) -> None:
        self.offsets: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.offsets[tp] = offset


def test_a_store_is_told_the_last_changelog_offset_of_each_partition() -> None:
    def at(partition: int, offset: int) -> RecordMetadata:
        tp = TopicPartition("log", partition)
        return RecordMetadata("log", partition, tp, offset, -1, 0, 0)

    kept = _OffsetsKept()
    persist_offsets(kept, [at(0, 7), at(1, 3), at(0, 9), at(0, 8)])  # type: ignore[arg-type]
    assert kept.offsets == {TP("log", 0): 9, TP("log", 1): 3}


def test_an_entity_on_a_partition_owned_elsewhere_goes_through_the_re_route_topic() -> None:
    table: dict[bytes, bytes] = {}
    event = factories.transaction(user_id="u-split-3")
    subject_partition = owner_partition(subject_of(event).key.encode(), PARTITIONS)
    keys = [k.encode() for k in entity_keys(event, RULES.entities, HASH_KEY)]
    elsewhere = {k for k in keys if owner_partition(k, PARTITIONS) != subject_partition}
    assert elsewhere and len(elsewhere) < len(keys)  # the event exercises both ways

    outputs = _score(_scorer(table), frozenset({subject_partition}), event)

    assert {k for t, k in outputs if t == TOPICS.validated} == elsewhere
    for key in keys:
        assert (key in table) is (key not in elsewhere)


def _written_elsewhere(table: dict[bytes, bytes], key: bytes, event_id: str, at_ms: int) -> None:
    """Another worker records an event in the key's state while its partition is away."""
    state = VelocityState.from_store(key, table.get, RULES.velocity.horizon_s)
    state.record(Observation(event_id, at_ms, "tx", 1_000), RULES.velocity.horizon_s)
    for suffix, value in state.changed_parts():
        table[key + suffix] = value


def test_cached_states_are_read_again_once_the_owned_partitions_change() -> None:
    """The table's state, not this worker's memory, is scored with after a rebalance."""
    everything = frozenset(range(PARTITIONS))
    for rebalanced in (False, True):
        table: dict[bytes, bytes] = {}
        scorer = _scorer(table)
        first = factories.transaction(user_id="u-moved")
        key = subject_of(first).key.encode()
        _score(scorer, everything, first)
        _written_elsewhere(table, key, "elsewhere", int(first.occurred_at.timestamp() * 1000))
        if rebalanced:
            scorer.begin(everything - {0})  # a partition went away, then came back
        _score(scorer, everything, factories.transaction(user_id="u-moved", event_id="after"))

        state = VelocityState.from_store(key, table.get, RULES.velocity.horizon_s)
        assert first.event_id in state and "after" in state
        # Without a rebalance the cached state stands (nobody else may write the key).
        assert ("elsewhere" in state) is rebalanced


def test_decisions_are_the_same_with_and_without_the_cache() -> None:
    """The cache only saves decoding: a scorer whose cache is dropped before every batch
    decides every event exactly as one that keeps it."""
    events = [factories.transaction(user_id=f"u-{n % 3}") for n in range(12)]
    kept, dropped = _scorer({}), _scorer({})
    everything = frozenset(range(PARTITIONS))
    features_kept, features_dropped = [], []
    for event in events:
        for scorer, out in ((kept, features_kept), (dropped, features_dropped)):
            if scorer is dropped:
                scorer.forget()
            batch = scorer.begin(everything)
            key = subject_of(event).key.encode()
            scorer.handle(
                batch, _Record(_Message(TOPICS.transactions, key, CODEC.encode(event))), RULES
            )  # type: ignore[arg-type]
            scorer.write_states(batch)
            decision = next(
                CODEC.decode(v, (Decision,))
                for t, _, v, _, _ in batch.outputs
                if t == TOPICS.decisions
            )
            out.append(decision.features)
    assert features_kept == features_dropped
    assert features_kept[-1]["tx.count.24h"] == 4  # the state really carried over


def test_a_stop_while_the_views_load_leaves_no_task_behind() -> None:
    """A worker stopped before its views loaded kept the inner waits running (shielded); its
    stop waited a second for them, cancelled them and logged "_GatheringFuture exception was
    never retrieved" with a traceback."""

    async def scenario() -> set[asyncio.Task[object]]:
        views = SharedViews.starting(RULES, HASH_KEY)
        views.blocks_loaded.set()
        waiting = asyncio.create_task(views.wait_loaded())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]

    assert asyncio.run(scenario()) == set()


def test_past_its_bound_the_cache_drops_the_least_recently_used_states() -> None:
    everything = frozenset(range(PARTITIONS))
    views = SharedViews.starting(RULES, HASH_KEY)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    table = _CountingReads()
    scorer = Scorer(TOPICS, CODEC, clock, PARTITIONS, table, views, HASH_KEY, None, 8)
    busy = factories.transaction(user_id="u-busy")
    busy_key = subject_of(busy).key.encode()
    for n in range(20):
        _score(scorer, everything, factories.transaction(user_id=f"u-{n}"), busy)
        scorer.begin(everything)
        assert len(scorer.cache) <= 8
    assert table.reads[busy_key] == 1  # used in every batch: never dropped, never read again
    assert b"user:u-19" in scorer.cache and b"user:u-0" not in scorer.cache


class _CountingReads(dict[bytes, bytes]):
    """The table, counting the scorer's reads per key."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[bytes] = Counter()

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        self.reads[key] += 1
        return super().get(key, default)


def _decisions(scorer: Scorer, *records: _Record) -> list[Decision]:
    batch = scorer.begin(frozenset(range(PARTITIONS)))
    for record in records:
        scorer.handle(batch, record, RULES)  # type: ignore[arg-type]
    scorer.write_states(batch)
    return [
        CODEC.decode(value, (Decision,))
        for topic, _, value, _, _ in batch.outputs
        if topic == TOPICS.decisions
    ]


def test_an_event_from_a_clock_running_ahead_is_scored_as_of_its_arrival() -> None:
    """An hour ahead of its broker timestamp: counted and scored at arrival, the decision
    keeps the stamped time and says why; a re-delivery gets the same decision."""
    table: dict[bytes, bytes] = {}
    scorer = _scorer(table)
    arrived = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    stamped = arrived + timedelta(hours=1)
    event = factories.transaction(user_id="u-skew", occurred_at=stamped)
    message = _Message(TOPICS.transactions, subject_of(event).key.encode(), CODEC.encode(event))
    message.timestamp = arrived.timestamp()
    (decision,) = _decisions(scorer, _Record(message))

    assert decision.event_occurred_at == stamped
    assert decision.features["event.clock_skew_s"] == 3600
    (skew,) = [r for r in decision.reasons if r.code == "EVENT_CLOCK_SKEW"]
    assert (skew.points, skew.detail) == (
        0,
        "occurred_at was 3600s ahead of its arrival: scored as of its arrival",
    )
    state = VelocityState.from_store(
        subject_of(event).key.encode(), table.get, RULES.velocity.horizon_s
    )
    arrived_ms = int(arrived.timestamp() * 1000)
    assert state.window("tx", arrived_ms, 1).count == 1  # counted in the second it arrived
    (again,) = _decisions(_scorer(table), _Record(message))
    assert (again.reasons, again.features) == (decision.reasons, decision.features)


def test_a_small_skew_is_scored_as_stamped() -> None:
    arrived = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    stamped = arrived + timedelta(seconds=RULES.validation.max_future_skew_seconds)
    event = factories.transaction(user_id="u-small-skew", occurred_at=stamped)
    message = _Message(TOPICS.transactions, subject_of(event).key.encode(), CODEC.encode(event))
    message.timestamp = arrived.timestamp()
    (decision,) = _decisions(_scorer({}), _Record(message))

    assert "event.clock_skew_s" not in decision.features
    assert "EVENT_CLOCK_SKEW" not in [r.code for r in decision.reasons]


def test_a_gift_action_s_fraud_event_names_its_ip_as_ip_blocks_do() -> None:
    """The seed's fraud_events.ip, as the keyed hash an IP block's entity id is."""
    ip = "198.51.100.77"
    gift = factories.gift(ip=ip)
    scorer = _scorer({})
    batch = scorer.begin(frozenset(range(PARTITIONS)))
    record = _Record(_Message(TOPICS.gifts, subject_of(gift).key.encode(), CODEC.encode(gift)))
    scorer.handle(batch, record, RULES)  # type: ignore[arg-type]
    (value,) = [v for topic, _, v, _, _ in batch.outputs if topic == TOPICS.fraud_events]

    ip_id = CODEC.decode(value, (FraudEvent,)).ip_id
    assert ip_id == keyed_id(ip, HASH_KEY)
    assert f"ip:{ip_id}" in entity_keys(gift, RULES.entities, HASH_KEY)
    assert ip.encode() not in value


def _handle_all(scorer: Scorer, records: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes]]:
    batch = scorer.begin(frozenset(range(PARTITIONS)))
    for topic, key, value in records:
        scorer.handle(batch, _Record(_Message(topic, key, value)), RULES)  # type: ignore[arg-type]
    scorer.write_states(batch)
    return [(topic, value) for topic, _, value, _, _ in batch.outputs]


def test_any_failure_dead_letters_its_record_and_the_rest_of_the_batch_is_decided(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Poison on an input topic and on the re-route topic (written by anyone), and a record
    whose scoring raises: each is dead-lettered with its class, the valid ones decided."""
    table: dict[bytes, bytes] = {}
    scorer = _scorer(table)
    valid = [factories.transaction(user_id=f"u-{n}") for n in range(3)]
    broken = factories.transaction(user_id="u-broken", card_id="card-broken")
    known = scorer.views.known_frauds
    known.features = _raise_for(broken, known.features)  # type: ignore[method-assign]
    deep = b'{"a": ' + b"[" * 3_000 + b"]" * 3_000 + b"}"
    records = [
        (TOPICS.transactions, b"k", deep),
        (TOPICS.transactions, subject_of(valid[0]).key.encode(), CODEC.encode(valid[0])),
        (TOPICS.validated, b"k", b'{"event_id": ' + b"9" * 5_000 + b"}"),
        (TOPICS.validated, b"k", b"\x00\x00\x00\x03\xecgarbage"),
        (TOPICS.transactions, subject_of(broken).key.encode(), CODEC.encode(broken)),
        (TOPICS.validated, subject_of(valid[1]).key.encode(), CODEC.encode(valid[1])),
        (TOPICS.transactions, subject_of(valid[2]).key.encode(), CODEC.encode(valid[2])),
    ]
    outputs = _handle_all(scorer, records)

    decided = {CODEC.decode(v, (Decision,)).event_id for t, v in outputs if t == TOPICS.decisions}
    assert decided == {e.event_id for e in valid}
    letters = [CODEC.decode(v, (DeadLetter,)) for t, v in outputs if t == TOPICS.dead_letters]
    assert [letter.error_class for letter in letters] == [
        "NestingTooDeep",
        "SchemaNotAccepted",  # JSON names no schema: the re-route topic takes Avro only
        "MalformedPayload",
        "ScoringFailed",
    ]
    assert letters[-1].error_message == "RuntimeError"  # the class only, never a value
    assert "RuntimeError at " in caplog.text and "maria" not in caplog.text  # where, not what


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b"\x01\x10\x00\x00\x00garbage",  # the LZ4 format byte, a block that does not decode
        b"\x01\xff\xff\xff\x7fgarbage",  # a block claiming 2 GB
        b"\x01" + b"\x00" * 3,  # too short for the block's size
        b"\x02garbage",  # the zstd format byte, not a frame
        # a frame claiming 2 GB (magic, single segment with an 8-byte size, the size)
        b"\x02\x28\xb5\x2f\xfd\xe0" + (2**31).to_bytes(8, "little") + b"garbage",
        b"\x02" + zstandard.ZstdCompressor().compress(b"x" * 100)[:-3],  # cut short
        b'{"w": "late", "m": {"tx": [[1]]}, "s": {}}',  # JSON of the wrong shape
        b"\x03garbage",  # the format byte of a state kept in parts, not a frame
        b"\x03" + zstandard.ZstdCompressor().compress(b"[1]"),  # a head not an object
    ],
)
def test_an_unreadable_stored_state_dead_letters_its_event_and_the_batch_goes_on(
    stored: bytes,
) -> None:
    """A subject's state the store holds but cannot be read (damaged on disk, or written by
    something else) loses nothing: the event goes to the dead-letter topic with its class,
    the other events of the batch are decided."""
    broken = factories.transaction(user_id="u-damaged")
    _dead_lettered_beside_a_valid_one(broken, {subject_of(broken).key.encode(): stored})


@pytest.mark.parametrize(
    "part",
    [
        b"garbage",
        b"\x02garbage",
        b"\x02" + zstandard.ZstdCompressor().compress(b"[1]"),  # not an object
        b"\x02" + zstandard.ZstdCompressor().compress(b'{"d": "x", "m": {}, "s": {}}'),
        b"\x02" + zstandard.ZstdCompressor().compress(b'{"d": 1, "m": {"tx": 5}, "s": {}}'),
    ],
)
def test_an_unreadable_day_of_a_stored_state_dead_letters_its_event(part: bytes) -> None:
    """A state whose head reads but one of whose day parts does not: the same as a damaged
    state, its event dead-lettered, the batch decided."""
    broken = factories.transaction(user_id="u-damaged-day")
    key = subject_of(broken).key.encode()
    head = b"\x03" + zstandard.ZstdCompressor().compress(b"{}")
    _dead_lettered_beside_a_valid_one(broken, {key: head, key + day_part(7): part})


def _dead_lettered_beside_a_valid_one(broken: Any, table: dict[bytes, bytes]) -> None:
    valid = factories.transaction(user_id="u-fine")
    records = [
        (TOPICS.transactions, subject_of(e).key.encode(), CODEC.encode(e)) for e in (broken, valid)
    ]
    outputs = _handle_all(_scorer(table), records)

    decided = [CODEC.decode(v, (Decision,)).event_id for t, v in outputs if t == TOPICS.decisions]
    assert decided == [valid.event_id]
    letters = [CODEC.decode(v, (DeadLetter,)) for t, v in outputs if t == TOPICS.dead_letters]
    assert [letter.error_class for letter in letters] == ["ScoringFailed"]
    assert CODEC.decode(letters[0].original_value, (type(broken),)) == broken


def _raise_for(event: Any, features: Any) -> Any:
    """``features`` of the known frauds, raising for ``event``'s card (a bug's stand-in)."""

    def failing(labelled: list[str], *args: Any) -> Any:
        if any(event.card_id and event.card_id in key for key in labelled):
            raise RuntimeError("a bug with a value in its message: maria@example.com")
        return features(labelled, *args)

    return failing


def test_raw_personal_data_in_a_hash_field_is_counted_and_alerted_once_without_its_value() -> None:
    from streams.metrics import RAW_PII_IN_HASH

    before = RAW_PII_IN_HASH.labels("email_hash")._value.get()
    leaked = factories.transaction().model_dump(mode="json") | {"email_hash": "maria@example.com"}
    value = json.dumps(leaked).encode()
    outputs = _handle_all(_scorer({}), [(TOPICS.transactions, b"k", value)] * 2)

    assert RAW_PII_IN_HASH.labels("email_hash")._value.get() == before + 2
    alerts = [CODEC.decode(v, (Alert,)) for t, v in outputs if t == TOPICS.alerts]
    assert [a.rule for a in alerts] == ["raw_pii_in_hash"]  # the second one throttled
    assert "email_hash" in alerts[0].message
    assert b"maria" not in b"".join(v for t, v in outputs if t != TOPICS.dead_letters)
