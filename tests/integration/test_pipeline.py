"""Event -> scoring agent -> decision topic, on the real Tansu broker with real workers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from atalaia.broker import EmbeddedBroker
from atalaia.demo import await_worker
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.rules import load_rules
from config.settings import Settings
from engine.admission import subject_of
from engine.decisions import DecisionLedger, Seen
from engine.entities import keyed_id
from engine.velocity import Observation, VelocityState
from schemas.codec import WireCodec
from schemas.models import (
    Decision,
    DecisionAction,
    GiftEvent,
    InputEvent,
    TransactionEvent,
    Verdict,
)
from streams.partitioning import owner_partition
from streams.reader import read_topics
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import (
    CODEC,
    collect,
    entity_window_mismatches,
    read_giftpix_outputs,
    recomputed_windows,
    reference_features,
    send_events,
    timed_transactions,
    window_mismatches,
)

pytestmark = pytest.mark.integration


def test_every_valid_event_gets_one_decision_keyed_by_subject(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    over_limit = factories.gift(amount_cents=150_000)
    failed_pix = factories.gift(event_type="payment_failed", amount_cents=None)
    avro_events = [factories.transaction() for _ in range(20)] + [over_limit, failed_pix]
    # Successful logins: the factory's failed ones from one device over seven accounts are
    # credential stuffing, whose device and IP blocks are not what this test reads.
    logins = [factories.login(success=True, failure_reason=None) for _ in range(10)]
    json_events = [*logins, *(factories.gift() for _ in range(5))]
    start_worker()

    asyncio.run(send_events(bootstrap, topics, avro_events, avro=True))
    asyncio.run(send_events(bootstrap, topics, json_events, avro=False))
    everything = avro_events + json_events
    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in everything}))

    per_event = Counter(d.event_id for _, d in out.decisions)
    assert set(per_event) == {e.event_id for e in everything}
    assert set(per_event.values()) == {1}
    by_id = {d.event_id: (record, d) for record, d in out.decisions}
    for event in everything:
        record, decision = by_id[event.event_id]
        assert record.key == subject_of(event).key.encode()
        assert decision.rule_version == load_rules().version
    assert by_id[over_limit.event_id][1].decision is Verdict.BLOCK
    assert [r.code for r in by_id[over_limit.event_id][1].reasons] == ["GIFT_AMOUNT_OVER_LIMIT"]
    assert by_id[over_limit.event_id][1].actions == [
        DecisionAction.INTERNAL_ALERT,
        DecisionAction.BLOCK_GIFT_CREATION,
    ]
    assert by_id[over_limit.event_id][1].user_message == load_rules().gift.actions.blocked_message
    assert by_id[failed_pix.event_id][1].score == 20
    assert out.dead_letters == []
    # GiftPix automatic actions: the over-limit giver is blocked; every gift action is recorded.
    blocks, fraud_events = asyncio.run(read_giftpix_outputs(bootstrap, topics))
    assert [(b.entity_id, b.reason) for b in blocks] == [
        (over_limit.giver_user_id, "GIFT_AMOUNT_OVER_LIMIT")
    ]
    gift_ids = {e.event_id for e in everything if isinstance(e, GiftEvent)}
    assert {f.event_id for f in fraud_events} == gift_ids
    hash_key = engine_settings.pii_hash_key.get_secret_value().encode()
    assert {f.ip_id for f in fraud_events} == {keyed_id("198.51.100.4", hash_key)}  # all from it
    # No personal data leaves the engine on the decision topic.
    raw = b"".join(record.value for record, _ in out.decisions)
    for personal in ("203.0.113.7", "2001:db8::1", "198.51.100.4", factories.sha("a@b.c")):
        assert personal.encode() not in raw


def test_garbage_goes_to_the_dlq_with_its_reason_and_the_worker_keeps_going(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    negative = json.loads(factories.gift().model_dump_json()) | {"amount_cents": -1}
    from_the_future = factories.transaction(occurred_at=datetime.now(UTC) + timedelta(days=2))
    bad = [
        (topics.transactions, b"\xde\xad\xbe\xef garbage", "MalformedPayload"),
        (topics.logins, CODEC.encode(factories.transaction()), "SchemaNotAccepted"),
        (topics.gifts, json.dumps(negative).encode(), "ValidationError"),
        (topics.transactions, b"\x00\x00\x00\x30\x39" + b"x" * 10, "UnknownSchemaId"),
        (topics.transactions, CODEC.encode(from_the_future), "FutureTimestamp"),
    ]
    worker = start_worker()
    asyncio.run(publish(bootstrap, [OutRecord(t, b"k", v) for t, v, _ in bad]))
    # A clock an hour ahead: scored as of its arrival, not refused.
    skewed = factories.transaction(occurred_at=datetime.now(UTC) + timedelta(hours=1))
    after = [factories.transaction(), factories.gift(), skewed]
    asyncio.run(send_events(bootstrap, topics, after))

    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in after}, len(bad)))

    assert worker.alive
    assert out.decided_ids() == {e.event_id for e in after}
    letters = {letter.original_value: letter for letter in out.dead_letters}
    assert len(out.dead_letters) == len(bad)
    for topic, value, error_class in bad:
        letter = letters[value]
        assert (letter.source_topic, letter.error_class) == (topic, error_class)
        assert letter.original_key == b"k"
        assert letter.source_offset >= 0 and letter.error_message
    assert letters[json.dumps(negative).encode()].error_message == (
        "GiftEvent: amount_cents: Input should be greater than 0"
    )
    (late,) = [d for _, d in out.decisions if d.event_id == skewed.event_id]
    assert late.event_occurred_at == skewed.occurred_at
    assert "EVENT_CLOCK_SKEW" in [r.code for r in late.reasons]
    assert 3_500 < late.features["event.clock_skew_s"] <= 3_600


def _decide_and_check(
    out_decisions: list[Decision], events: list[TransactionEvent]
) -> Counter[Seen]:
    """Every event decided, re-deliveries identical, window and profile values exact."""
    wanted = {e.event_id for e in events}
    ours = [d for d in out_decisions if d.event_id in wanted]
    ledger = DecisionLedger()
    outcomes = Counter(ledger.observe(d) for d in ours)
    assert {d.event_id for d in ours} == wanted
    assert outcomes[Seen.FIRST] == len(events)
    assert outcomes[Seen.CONFLICT] == 0
    assert outcomes[Seen.DUPLICATE] == len(ours) - len(events)
    # Windows counted by brute force from the input; every feature of the state (windows and
    # profile) as an uninterrupted engine reads it from the same input.
    assert window_mismatches(ours, recomputed_windows(events, load_rules().velocity.windows)) == []
    assert window_mismatches(ours, reference_features(events)) == []
    return outcomes


def _ready_worker(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """A worker that has joined its group: it decided a warm-up event."""
    topics = Topics(settings.topic_prefix)
    worker = start_worker(settings=settings)
    warmup = factories.gift()
    asyncio.run(send_events(settings.bootstrap_servers, topics, [warmup]))
    asyncio.run(collect(settings.bootstrap_servers, topics, {warmup.event_id}))
    return worker


def _all_decided_into_exact_windows(
    settings: Settings, events: list[TransactionEvent]
) -> list[Decision]:
    """Every event decided, its subject's windows and its entities' windows exact."""
    wanted = {e.event_id for e in events}
    topics = Topics(settings.topic_prefix)
    out = asyncio.run(collect(settings.bootstrap_servers, topics, wanted, idle_timeout_s=90))
    decisions = [d for _, d in out.decisions]
    _decide_and_check(decisions, events)
    assert asyncio.run(entity_window_mismatches(settings, events)) == []
    return decisions


def test_events_not_keyed_by_subject_are_rerouted_and_windows_stay_exact(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Upstream may key by anything: an event off its subject's partition is re-routed there.

    All events share one key (one partition, so each user's order is kept): users owned by
    that partition are decided in place, the others after the re-route.
    """
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    events = timed_transactions(600, users=6)
    shared_key = b"not-a-subject"
    arrival = owner_partition(shared_key, engine_settings.partitions)
    owners = {
        owner_partition(subject_of(e).key.encode(), engine_settings.partitions) for e in events
    }
    assert arrival in owners and len(owners) > 1  # both paths are exercised
    records = [OutRecord(topics.transactions, shared_key, CODEC.encode(e)) for e in events]
    start_worker()

    asyncio.run(publish(bootstrap, records))
    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in events}))

    _decide_and_check([d for _, d in out.decisions], events)
    assert {r.key for r, _ in out.decisions} == {subject_of(e).key.encode() for e in events}


def test_kill_9_mid_stream_then_restart_decides_every_event_with_exact_windows(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """At-least-once: nothing lost; re-deliveries are identical and collapse by event_id;
    velocity state recovered from RocksDB + changelog still counts every event once, in the
    subjects' windows and in the windows of the entities they name (IP, device, document,
    counterparty: counted by the same worker in the batch that decides the event)."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    events = timed_transactions(3000, users=12)
    first = _ready_worker(engine_settings, start_worker)

    async def send_and_kill() -> int:
        # A third decided first, then the rest paced over 2 s with the kill half a second in:
        # mid-stream however fast or slow the machine (a fixed sleep after the start is not).
        head, tail = events[:1000], events[1000:]
        await send_events(bootstrap, topics, head)
        await collect(bootstrap, topics, {e.event_id for e in head})
        sending = asyncio.create_task(send_events(bootstrap, topics, tail, rate=1000))
        await asyncio.sleep(0.5)
        first.kill()
        await sending
        seen = await collect(bootstrap, topics, None, idle_timeout_s=2)
        return len(seen.decided_ids() & {e.event_id for e in events})

    decided_before_restart = asyncio.run(send_and_kill())
    assert 0 < decided_before_restart < len(events), "the kill must land mid-stream"

    start_worker()
    _all_decided_into_exact_windows(engine_settings, events)


def test_broker_stalled_mid_stream_then_back_loses_nothing_and_windows_stay_exact(
    broker: EmbeddedBroker,
    engine_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The broker stops answering for 4 s while the worker is busy (less than the session
    timeout of the ``tansu`` profile: no rebalance): sends wait or are retried until stored,
    the worker lives on, and every event is decided (re-deliveries identical) into windows
    that match the input."""
    settings = engine_settings.model_copy(update={"profile": "tansu"})
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    events = timed_transactions(2000, users=12)
    worker = _ready_worker(settings, start_worker)

    async def send_through_a_stall() -> None:
        sending = asyncio.create_task(send_events(bootstrap, topics, events, rate=1000))
        await asyncio.sleep(1.0)  # the worker is now busy with the stream
        assert not sending.done(), "the stall must land mid-stream"
        with broker.stalled():
            await asyncio.sleep(4.0)
        await sending

    asyncio.run(send_through_a_stall())
    decisions = _all_decided_into_exact_windows(settings, events)
    # The stall was real: for seconds nothing was decided, then the stream went on.
    decided_at = sorted({d.decided_at for d in decisions})
    assert max(b - a for a, b in pairwise(decided_at)) >= timedelta(seconds=3)
    assert worker.alive


def test_second_worker_joining_mid_stream_keeps_windows_exact(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A rebalance moves partitions (and their state, via the changelog) to a new worker:
    subjects' and entities' windows stay exact (entities partly counted through the re-route
    topic, by the worker that owns them)."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    events = timed_transactions(3000, users=12)
    start_worker()

    async def send_while_joining() -> WorkerProcess:
        sending = asyncio.create_task(send_events(bootstrap, topics, events, rate=500))
        await asyncio.sleep(2)
        joiner = start_worker(node=1)  # joins the group: partitions move mid-stream
        await sending
        return joiner

    second = asyncio.run(send_while_joining())
    _all_decided_into_exact_windows(engine_settings, events)
    # The newcomer really took over part of the stream (and recovered its state).
    log = second.log_file.read_text()
    assignment = log[log.rindex("Setting newly assigned partitions") :]
    assert re.search(rf"\| {re.escape(topics.transactions)}\s+\| \{{\d", assignment), assignment
    assert second.alive


def test_a_fresh_worker_recovers_state_written_in_multi_record_batches(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The velocity changelog holds each subject's state in batches of many records (as a
    busy worker writes it); a worker with an empty data directory recovers all of it: the
    next event of every subject counts the history the changelog holds.

    The events wait on the broker before the new group's first worker is ready: records
    fetched during recovery must be read again after it, none lost (under load that race
    lost some before ``streams.transport`` stopped the flow before seeking).
    """
    bootstrap = engine_settings.bootstrap_servers
    topics = Topics(engine_settings.topic_prefix)
    history = 4
    users = [f"seeded-{n}" for n in range(60)]
    now = datetime.now(UTC)
    states = {}
    for user in users:
        state = VelocityState()
        for n in range(history):
            at_ms = int((now - timedelta(hours=n + 1)).timestamp() * 1000)
            state.record(Observation(f"{user}-old-{n}", at_ms, "tx", 1_000), 2_592_000)
        states[user] = state.to_bytes()
    changelog = f"{engine_settings.app_id}-velocity-changelog"
    asyncio.run(_write_in_batches(bootstrap, changelog, engine_settings.partitions, states))

    start_worker()
    nexts = [factories.transaction(user_id=user, occurred_at=now) for user in users]
    asyncio.run(send_events(bootstrap, topics, nexts))
    out = asyncio.run(collect(bootstrap, topics, {e.event_id for e in nexts}))

    counts = {d.subject_id: d.features["tx.count.30d"] for _, d in out.decisions}
    assert counts == {user: history + 1 for user in users}


def test_the_local_store_holds_what_the_changelog_holds_and_knows_how_far(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """The agent writes its states to RocksDB and sends their changelog records itself: after
    a stop, each partition's store holds the changelog's last value of every key, and its
    persisted offset is the changelog's last offset, where a restart resumes reading it."""
    topics = Topics(engine_settings.topic_prefix)
    bootstrap = engine_settings.bootstrap_servers
    events = timed_transactions(300, users=20)
    worker = start_worker()
    asyncio.run(send_events(bootstrap, topics, events))
    asyncio.run(collect(bootstrap, topics, {e.event_id for e in events}))
    assert worker.stop() == 0

    changelog = f"{engine_settings.app_id}-velocity-changelog"
    last_offset: dict[int, int] = {}
    latest: dict[int, dict[bytes, bytes]] = {}

    async def read_changelog() -> None:
        records = read_topics(bootstrap, [changelog], True, 2.0)
        async with aclosing(records):
            async for record in records:
                last_offset[record.partition] = record.offset
                latest.setdefault(record.partition, {})[record.key] = record.value

    asyncio.run(read_changelog())
    assert set(last_offset) == set(range(engine_settings.partitions))
    for partition, offset in last_offset.items():
        [path] = (tmp_path / "node-0").rglob(f"velocity-{partition}.db")
        options = rocksdict.Options(raw_mode=True)
        store = rocksdict.Rdict(str(path), options, access_type=rocksdict.AccessType.read_only())
        try:
            held = {k: v for k, v in store.items() if k != b"__faust\0offset__"}
            assert held == latest[partition]
            assert int(store[b"__faust\0offset__"]) == offset
        finally:
            store.close()


async def _write_in_batches(
    bootstrap: str, topic: str, partitions: int, states: dict[str, bytes]
) -> None:
    """Each subject's state on its partition, sent together so that records share batches."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    sends = []
    for user, value in states.items():
        key = f"user:{user}".encode()
        partition = owner_partition(key, partitions)
        sends.append(await producer.send(topic, value, key=key, partition=partition))
    await asyncio.gather(*sends)
    await producer.stop()


def test_a_long_backlog_of_three_topics_keeps_event_time_order_across_fetches(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Six people's payments, logins and gifts, a day of each, published in the order they
    happened, far faster than one worker decides them: fetches bring the three topics
    unevenly, and a cut partition's rest must not let another topic run ahead while it is
    fetched again. Of each person's consecutive events on two topics, hardly any are
    decided in reverse."""
    topics = Topics(engine_settings.topic_prefix)
    start = datetime.now(UTC) - timedelta(days=2)
    people = [f"long-backlog-{n}" for n in range(6)]

    def series(
        make: Callable[..., InputEvent], whose: str, every: int, at: int, count: int, **fields: Any
    ) -> list[InputEvent]:
        """``count`` events of each person, ``every`` minutes apart from minute ``at``."""
        return [
            make(
                event_id=f"lb-{make.__name__}-{person}-{n}",
                occurred_at=start + timedelta(minutes=every * n + at),
                **{whose: person},
                **fields,
            )
            for person in people
            for n in range(count)
        ]

    payments = series(factories.transaction, "user_id", 3, 0, 400, amount_cents=1_000)
    logins = series(factories.login, "user_id", 3, 1, 400, success=True, failure_reason=None)
    gifts = series(factories.gift, "giver_user_id", 30, 2, 40, amount_cents=1_000)
    events = sorted([*payments, *logins, *gifts], key=lambda e: e.occurred_at)
    start_worker()
    bootstrap = engine_settings.bootstrap_servers
    asyncio.run(await_worker(bootstrap, WireCodec(), topics, time.monotonic()))
    asyncio.run(send_events(bootstrap, topics, events))
    wanted = {e.event_id for e in events}
    out = asyncio.run(collect(engine_settings.bootstrap_servers, topics, wanted))
    order: dict[str, int] = {}
    for index, (_, decision) in enumerate(out.decisions):
        order.setdefault(decision.event_id, index)
    assert wanted <= set(order)
    pairs = reversed_pairs = 0
    for person in people:
        own = sorted(
            (e for e in events if subject_of(e).key == f"user:{person}"),
            key=lambda e: e.occurred_at,
        )
        for earlier, later in pairwise(own):
            if type(earlier) is not type(later):
                pairs += 1
                reversed_pairs += order[earlier.event_id] > order[later.event_id]
    assert pairs > 4_000
    assert reversed_pairs <= pairs // 100, (reversed_pairs, pairs)


def test_a_backlog_across_input_topics_is_decided_in_event_time_order(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """One person's 400 logins (a busy topic) and 40 gifts (a sparse one), a minute and ten
    minutes apart, published as a backlog with every gift first: each gift is decided after
    the logins that happened before it, not handed out with the first logins fetched."""
    topics = Topics(engine_settings.topic_prefix)
    start = datetime.now(UTC) - timedelta(days=1)
    logins = [
        factories.login(
            event_id=f"order-login-{n}",
            user_id="order-user",
            success=True,
            failure_reason=None,
            occurred_at=start + timedelta(minutes=n),
        )
        for n in range(400)
    ]
    gifts = [
        factories.gift(
            event_id=f"order-gift-{n}",
            giver_user_id="order-user",
            amount_cents=1_000,
            occurred_at=start + timedelta(minutes=10 * n, seconds=30),
        )
        for n in range(40)
    ]
    assert subject_of(logins[0]).key == subject_of(gifts[0]).key  # one partition number
    asyncio.run(send_events(engine_settings.bootstrap_servers, topics, [*gifts, *logins]))
    start_worker()
    wanted = {e.event_id for e in [*gifts, *logins]}
    out = asyncio.run(collect(engine_settings.bootstrap_servers, topics, wanted))
    decided = [d.event_id for _, d in out.decisions if d.event_id in wanted]
    assert set(decided) == wanted
    first = {event_id: decided.index(event_id) for event_id in wanted}
    for n, gift in enumerate(gifts):
        logins_before = sum(first[login.event_id] < first[gift.event_id] for login in logins)
        assert logins_before >= 10 * n + 1, (n, logins_before)
