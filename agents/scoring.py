"""The engine's agent: validate, route by subject, decide, publish. One Faust hop per event.

Input topics and the re-route topic are read together, in batches. An event that arrived on
the partition owning its subject (upstream keyed it by subject, as our producers do) is decided
at once; any other is re-routed to that partition through the ``validated`` topic and decided
when it comes back. All these topics have the same partition count and Faust assigns partition
*p* of each to one worker, so one worker owns a subject's state: a Faust table (RocksDB,
changelog-backed) holding our own time buckets (``engine.velocity``), not a windowed table.
An event is counted for each entity it names (and a redemption for its giver) by the worker
owning that key: before its decision when that is this worker (so the event that crosses an
entity's limit is stopped by the block it places), else through the re-route topic after it.

States are read through the table's store (RocksDB or memory), on the partition Faust's
"current event" context variable names; in a batch we point it at the record being handled,
so every state is read from (and later written to) its subject's partition. Only the
context variable of this task: the stream's own ``current_event`` attribute is what
``take_events`` reads for the next record arriving meanwhile, and overwriting it there would
swap that record for a stale one.
The states a batch changed are written at its end: on RocksDB as one write batch per
partition (as Faust applies a changelog batch), on the memory store key by key. Their
changelog records go through the side producer with the batch's other outputs, and the
store's persisted offsets (where Faust's recovery resumes reading the changelog) are set once
per partition when all of them are acknowledged: what a Faust table write does per record,
~50-115 µs cheaper per state (``bench.faust_floor``, with and without ``--through-table``).
Faust acknowledges a batch even when its processing raises: outputs are retried until stored
and an event that cannot be decided is dead-lettered with the reason, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import Stream
from faust.types import TP, EventT, StoreT
from rocksdict import WriteBatch

from agents.current import PartitionEvent, as_current
from agents.networks import NetworkLists
from agents.retry import until_stored
from config.rules import LiveRules, RuleSet
from engine.accounts import AccountView
from engine.admission import admit, subject_of
from engine.alerts import Throttle, raw_pii_alert
from engine.decide import Outcome
from engine.entities import BlockView, entity_key, named_entity_keys
from engine.learning import (
    BATCH,
    CHALLENGER,
    CHAMPION,
    FLOW_MODELS,
    KnownFrauds,
    LoadedModel,
    ModelShelf,
    blend,
)
from engine.lists import ListView
from engine.step import (
    Effects,
    Scoring,
    UnexpectedKey,
    Views,
    count_step,
    decide_step,
    is_subject_key,
    shadow_decision,
)
from engine.velocity import VelocityState
from schemas.codec import DecodeError, WireCodec
from schemas.dead_letters import dead_letter_of
from schemas.errors import failure_without_values
from schemas.models import (
    EVENT_KIND_OF,
    INPUT_MODELS,
    Decision,
    FraudBlock,
    InputEvent,
    ShadowDecision,
    TransactionEvent,
)
from streams.metrics import (
    ACCOUNT_FREEZES,
    DEAD_LETTERS,
    DECISIONS,
    EVENTS_IN,
    LATENCY,
    LIST_HITS,
    MODEL_LATE_EVENTS,
    RAW_PII_IN_HASH,
    child_of,
)
from streams.partitioning import owner_partition
from streams.side_producer import SideProducer, SideRecord
from streams.topics import Topics
from streams.views import default_list_view

log = logging.getLogger(__name__)

SCORING_FAILED = "ScoringFailed"


async def send_batch(
    producer: SideProducer, batch: Batch, changelog_topic: str
) -> list[RecordMetadata]:
    """Send every output and changelog record and wait until the broker acknowledged all of
    them; the changelog records' positions."""
    changelog = [(changelog_topic, key, value, None, p) for key, value, p in batch.changelog]
    acknowledged = await producer.send_all([*batch.outputs, *changelog])
    return acknowledged[len(batch.outputs) :]


StateWrites = list[tuple[bytes, bytes, int]]
"""State parts to store: key, value, partition."""


def write_states_to(
    store: MutableMapping[bytes, bytes], topic: str
) -> Callable[[StateWrites], None]:
    """How a batch's states reach the velocity table's store. RocksDB takes one write batch
    per partition, as Faust applies a changelog batch (a put through the store costs its
    layers and a write per key); any other store one key at a time, on the key's partition."""
    if isinstance(store, RocksDBStore) and store.use_rocksdict:
        rocksdb_store = store

        def write_batches(writes: StateWrites) -> None:
            batches: dict[int, WriteBatch] = {}
            for key, value, partition in writes:
                if partition not in batches:
                    batches[partition] = WriteBatch(raw_mode=True)
                batches[partition].put(key, value)
            for partition, batch in batches.items():
                rocksdb_store._db_for_partition(partition).write(batch)

        return write_batches

    def write_each(writes: StateWrites) -> None:
        for key, value, partition in writes:
            with as_current(PartitionEvent(topic, partition)):
                store[key] = value

    return write_each


def persist_offsets(store: StoreT[bytes, bytes], positions: list[RecordMetadata]) -> None:
    """Tell the store how far the changelog it holds goes, per partition (as Faust does per
    record): a restart then reads only what came after."""
    last: dict[TP, int] = {}
    for position in positions:
        tp = TP(position.topic, position.partition)
        last[tp] = max(position.offset, last.get(tp, -1))
    for tp, offset in last.items():
        store.set_persisted_offset(tp, offset)


LOAD_WARNING_S = 10.0


@dataclass(frozen=True)
class SharedViews:
    """What every worker keeps whole, followed from compacted topics: the blocks on
    entities, the block/allow lists, the model snapshots, the known frauds and the frozen
    accounts. Scoring starts once all have read what their topic held at startup: a
    decision must not miss a list entry because the view was loading."""

    blocks: BlockView
    lists: ListView
    models: dict[str, ModelShelf]
    """Model snapshots by name: the champion's, and a challenger's scored in shadow."""
    known_frauds: KnownFrauds
    accounts: AccountView = field(default_factory=AccountView)
    networks: NetworkLists = field(default_factory=NetworkLists)
    blocks_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    lists_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    models_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    known_frauds_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    accounts_loaded: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def starting(cls, rules: RuleSet, hash_key: bytes) -> SharedViews:
        """What a worker holds before its followers read the topics: no blocks, the shipped
        default list entries, empty model shelves and no known frauds."""
        return cls(
            BlockView(),
            default_list_view(hash_key),
            {
                name: ModelShelf(rules.model.snapshot_history)
                for name in (CHAMPION, CHALLENGER, BATCH, *FLOW_MODELS.values())
            },
            KnownFrauds(rules.velocity.horizon_s * 1000, rules.model.known_fraud_keep),
        )

    async def wait_loaded(self) -> None:
        """One view after the other, each wait ending with this one: a stop meanwhile leaves
        nothing waiting behind it."""
        for loaded in self.loading().values():
            while not loaded.is_set():
                try:
                    await asyncio.wait_for(loaded.wait(), LOAD_WARNING_S)
                except TimeoutError:
                    log.warning("scoring waits: fraud blocks, lists or models not loaded yet")

    def loading(self) -> dict[str, asyncio.Event]:
        """Each view's "caught up" event, by name."""
        return {
            "fraud_blocks": self.blocks_loaded,
            "lists": self.lists_loaded,
            "models": self.models_loaded,
            "known_frauds": self.known_frauds_loaded,
            "account_states": self.accounts_loaded,
        }


@dataclass
class Batch:
    """What one batch produces: records to send and the states it changed (each with the
    partition it is written on), and the partitions this worker
    owned when the batch began; once stored, the changelog records of its states (key,
    value, partition)."""

    outputs: list[SideRecord]
    states: dict[bytes, tuple[VelocityState, int]]
    owned: frozenset[int]
    changelog: StateWrites = field(default_factory=list)


class Scorer:
    def __init__(
        self,
        topics: Topics,
        codec: WireCodec,
        clock: Callable[[], datetime],
        partitions: int,
        store: MutableMapping[bytes, bytes],
        views: SharedViews,
        hash_key: bytes,
        challenger: RuleSet | None,
        cache_keys: int = 0,
    ) -> None:
        self.topics, self.codec, self.clock = topics, codec, clock
        self.partitions = partitions
        self.store = store  # the velocity table's store, partitioned by the current event
        self.views, self.hash_key = views, hash_key
        self.challenger = challenger
        self.contracts = {topic: (model,) for topic, model in topics.input_models().items()}
        self.cache: dict[bytes, VelocityState] = {}
        self.cache_keys = cache_keys
        self.cached_for: frozenset[int] = frozenset()
        self.store_states = write_states_to(store, topics.validated)
        self.throttle: Throttle | None = None  # of the raw-PII alerts, made on first use
        self.engine_views = self.views_now()

    def begin(self, owned: frozenset[int]) -> Batch:
        """A new batch. The decoded states of the keys this worker owns are kept between
        batches (decoding one costs more than scoring with it); they are forgotten when the
        owned partitions change, as another worker may have written them meanwhile. Past
        ``cache_keys`` the least recently used quarter is dropped (not the whole cache: every
        busy key would then be read from RocksDB again at once)."""
        if owned != self.cached_for:
            self.forget()
            self.cached_for = owned
        elif len(self.cache) > self.cache_keys:
            stale = len(self.cache) - self.cache_keys * 3 // 4
            for key in list(islice(self.cache, stale)):  # least recently used first
                del self.cache[key]
        self.engine_views = self.views_now()  # a refreshed network index: from this batch on
        return Batch([], {}, owned)

    def views_now(self) -> Views:
        """What events are decided against, with the network index in force now."""
        views = self.views
        return Views(views.blocks, views.lists, views.accounts, views.networks.index, self.hash_key)

    def forget(self) -> None:
        self.cache.clear()

    def dead_letter(self, batch: Batch, record: EventT[bytes], error: str, detail: str) -> None:
        msg = record.message
        log.warning(
            "dead-lettered %s[%d]@%d: %s: %s", msg.topic, msg.partition, msg.offset, error, detail
        )
        child_of(DEAD_LETTERS, error).inc()
        key, letter = dead_letter_of(msg, error, detail, self.clock())
        batch.outputs.append((self.topics.dead_letters, key, self.codec.encode(letter), None, None))

    def on_raw_pii(
        self, batch: Batch, record: EventT[bytes], fields: tuple[str, ...], rules: RuleSet
    ) -> None:
        """Count an input holding raw personal data in hashed fields, and alert (throttled)."""
        for name in fields:
            child_of(RAW_PII_IN_HASH, name).inc()
        msg = record.message
        alert = raw_pii_alert(
            msg.topic, msg.partition, msg.offset, fields, rules.alerts, self.clock()
        )
        self.throttle = self.throttle or Throttle.of(rules.alerts)
        if self.throttle.allow(alert.dedupe_key, None, alert.created_at):
            value = self.codec.encode(alert)
            batch.outputs.append((self.topics.alerts, alert.alert_id.encode(), value, None, None))

    def handle(self, batch: Batch, record: EventT[bytes], rules: RuleSet) -> None:
        """Decide, count or re-route one record. Any failure, whatever raised it, sends the
        record to the dead-letter topic with its reason (what this record had added to the
        batch's outputs is dropped) and the rest of the batch goes on."""
        mark = len(batch.outputs)
        try:
            self._handle(batch, record, rules)
        except DecodeError as exc:
            del batch.outputs[mark:]
            if exc.raw_pii_fields:
                self.on_raw_pii(batch, record, exc.raw_pii_fields, rules)
            self.dead_letter(batch, record, exc.error_class, exc.message)
        except Exception as exc:  # a bug must not lose the batch: keep the record, say why
            del batch.outputs[mark:]
            log.error(
                "handling a record of %s failed: %s",
                record.message.topic,
                failure_without_values(exc),
            )
            self.dead_letter(batch, record, SCORING_FAILED, type(exc).__name__)

    def _handle(self, batch: Batch, record: EventT[bytes], rules: RuleSet) -> None:
        msg = record.message
        # The re-route topic is read like an input: other producers can write to it.
        contracts = self.contracts.get(msg.topic, INPUT_MODELS)
        event = admit(self.codec, msg.value, contracts, self.clock(), rules.validation)
        subject_key = subject_of(event).key.encode()
        # On the re-route topic the key names whose state the event is for: its subject, or
        # one of the entities it names (sent there by another worker after its decision).
        key = (msg.key or subject_key) if msg.topic == self.topics.validated else subject_key
        if owner_partition(key, self.partitions) != msg.partition:
            # Keep the input's broker timestamp: latency is measured from it.
            batch.outputs.append(
                (self.topics.validated, key, self.codec.encode(event), msg.timestamp, None)
            )
            return
        self.apply(batch, record, key, record, event, rules)

    def apply(
        self,
        batch: Batch,
        record: EventT[bytes],
        key: bytes,
        at: EventT[bytes] | PartitionEvent,
        event: InputEvent,
        rules: RuleSet,
    ) -> None:
        """Apply ``event`` to the state under ``key``, read and written on the partition of
        ``at``: decide it (the key is its subject's) or count it for an entity or a giver.
        A failure dead-letters ``record``, the input that carried the event."""
        state = self.state_of(batch, key, at, rules)
        try:
            if is_subject_key(key.decode(), event):
                self.decide(batch, record, key, state, event, rules)
            else:
                for block in count_step(state, key.decode(), event, rules):
                    # In force here at once (the next events of this very batch), as
                    # everywhere once the topic has it: applying it again changes nothing.
                    self.views.blocks.apply(block)
                    batch.outputs.append(self.block_record(block))
        except UnexpectedKey:
            self.dead_letter(batch, record, "UnexpectedStateKey", "not the event's subject")
            return
        except Exception as exc:  # a bug must not lose the event: keep it with the reason
            log.error("scoring failed for %s: %s", event.event_id, failure_without_values(exc))
            self.dead_letter(batch, record, SCORING_FAILED, type(exc).__name__)
            self.cache.pop(key, None)  # read it again from the store
            return
        self.keep(batch, key, state, at.message.partition)

    def state_of(
        self, batch: Batch, key: bytes, at: EventT[bytes] | PartitionEvent, rules: RuleSet
    ) -> VelocityState:
        """The state under ``key``: as this batch left it, else cached, else from the store
        on the partition of ``at``."""
        known = batch.states.get(key)
        if known:
            return known[0]
        if (cached := self.cache.get(key)) is not None:
            return cached
        with as_current(at):  # the reads use the key's partition
            return VelocityState.from_store(key, self.store.get, rules.velocity.horizon_s)

    def keep(self, batch: Batch, key: bytes, state: VelocityState, partition: int) -> None:
        """Write ``state`` at the batch's end (and keep it cached)."""
        batch.states[key] = (state, partition)
        if self.cache_keys:
            self.cache.pop(key, None)  # to the end: the cache's order is of last use
            self.cache[key] = state

    def count_here(
        self, batch: Batch, rules: RuleSet, key: str, event: InputEvent
    ) -> list[FraudBlock] | None:
        """Count an event about to be decided for an entity it names, when this worker owns
        the entity's partition: the blocks that places, published with the decision. None
        when another worker owns it (counted there after the decision)."""
        encoded = key.encode()
        partition = owner_partition(encoded, self.partitions)
        if partition not in batch.owned:
            return None
        at = PartitionEvent(self.topics.validated, partition)
        state = self.state_of(batch, encoded, at, rules)
        placed = count_step(state, key, event, rules)
        self.keep(batch, encoded, state, partition)
        return placed

    def count_elsewhere(
        self, batch: Batch, record: EventT[bytes], key: bytes, event: InputEvent, rules: RuleSet
    ) -> None:
        """Count a decided event for an entity (or a giver) it names: here when this worker
        owns the key's partition, else on the re-route topic for the worker that does."""
        partition = owner_partition(key, self.partitions)
        if partition in batch.owned:
            at = PartitionEvent(self.topics.validated, partition)
            self.apply(batch, record, key, at, event, rules)
        else:
            batch.outputs.append((self.topics.validated, key, self.codec.encode(event), None, None))

    def block_record(self, block: FraudBlock) -> SideRecord:
        """A fraud block for its compacted topic, keyed by the entity it blocks."""
        key = entity_key(block.entity_type, block.entity_id).encode()
        return (self.topics.fraud_blocks, key, self.codec.encode(block), None, None)

    def decide(
        self,
        batch: Batch,
        record: EventT[bytes],
        key: bytes,
        state: VelocityState,
        stamped: InputEvent,
        rules: RuleSet,
    ) -> None:
        """Decide ``stamped`` with the engine (``engine.step``), publish what that sets off
        and count the event where it counts."""
        challenger = None
        if self.challenger is not None:
            challenger = partial(self.shadow, self.challenger)
        effects = decide_step(
            state,
            stamped,
            rules,
            self.engine_views,
            partial(self.scoring_for, rules),
            record.message.timestamp,
            self.clock(),
            challenger,
            partial(self.count_here, batch, rules),
        )
        self.publish(batch, key, effects)
        for other in effects.counts_at:
            self.count_elsewhere(batch, record, other.encode(), effects.event, rules)

    def publish(self, batch: Batch, key: bytes, effects: Effects) -> None:
        """The records a decision sets off, in the order a reader expects them, and its
        metrics."""
        topics, encode = self.topics, self.codec.encode
        decision = effects.decision
        batch.outputs += [self.block_record(block) for block in effects.blocks]
        if effects.fraud_event is not None:
            batch.outputs.append(
                (topics.fraud_events, key, encode(effects.fraud_event), None, None)
            )
        batch.outputs.append((topics.decisions, key, encode(decision), None, None))
        if effects.shadow is not None:
            batch.outputs.append((topics.shadow_decisions, key, encode(effects.shadow), None, None))
        child_of(EVENTS_IN, decision.event_kind.value).inc()
        child_of(DECISIONS, decision.decision.value, decision.band.value).inc()
        LATENCY.observe(max(0, decision.latency_ms) / 1000)
        if effects.outcome.assessment.list_severity is not None:
            child_of(LIST_HITS, effects.outcome.assessment.list_severity.value).inc()
        if effects.override is not None:
            audit_key = effects.override.audit_id.encode()
            batch.outputs.append(
                (topics.audit_intake, audit_key, encode(effects.override), None, None)
            )
        if effects.freeze is not None and effects.freeze_audit is not None:
            ACCOUNT_FREEZES.inc()
            freeze, audit = effects.freeze, effects.freeze_audit
            batch.outputs += [
                (topics.account_states, freeze.user_id.encode(), encode(freeze), None, None),
                (topics.audit_intake, audit.audit_id.encode(), encode(audit), None, None),
            ]
        for link, audit in zip(effects.links, effects.link_audits, strict=True):
            batch.outputs += [
                (topics.lists, link.entry_id.encode(), encode(link), None, None),
                (topics.audit_intake, audit.audit_id.encode(), encode(audit), None, None),
            ]
        if effects.case_command is not None:
            command = encode(effects.case_command)
            batch.outputs.append((topics.case_commands, key, command, None, None))

    def scoring_for(self, rules: RuleSet, event: InputEvent, at_ms: int) -> Scoring:
        """The model snapshots an event is scored with: for a transaction the champion
        blended with the batch model, with its terminal and card's known frauds; for a login
        or gift event its flow's model."""
        if not rules.model.enabled:
            return Scoring()
        if isinstance(event, TransactionEvent):
            labelled = named_entity_keys(event, rules.model.known_fraud_entities, self.hash_key)
            windows = rules.velocity.windows
            known = self.views.known_frauds.features(labelled, at_ms, rules.model, windows)
            # A batch snapshot that knows labels from after the event is never used.
            trees = self._model(BATCH, at_ms, only_earlier=True)
            model = blend(self._model(CHAMPION, at_ms), trees, rules.model.batch.weight)
            return Scoring(model, known, tuple(labelled))
        if rules.model.flows.enabled:
            return Scoring(self._model(FLOW_MODELS[EVENT_KIND_OF[type(event)]], at_ms))
        return Scoring()

    def _model(self, name: str, at_ms: int, only_earlier: bool = False) -> LoadedModel | None:
        shelf = self.views.models.get(name)
        if shelf is None:
            return None
        model, knows_later = shelf.pick(at_ms)
        if knows_later:
            MODEL_LATE_EVENTS.inc()  # an old event: no snapshot is as old as it
            if only_earlier:
                return None
        return model

    def shadow(
        self,
        challenger: RuleSet,
        event: InputEvent,
        outcome: Outcome,
        decision: Decision,
        at_ms: int,
    ) -> ShadowDecision:
        """The challenger's would-be decision, with its own model snapshot."""
        model = self._model(CHALLENGER, at_ms) if challenger.model.enabled else None
        return shadow_decision(event, outcome, decision, challenger, model)

    def write_states(self, batch: Batch) -> None:
        """The parts of each state the batch changed, written on the state's partition, and
        their changelog records for the batch to send."""
        for key, (state, partition) in batch.states.items():
            batch.changelog += [
                (key + suffix, value, partition) for suffix, value in state.changed_parts()
            ]
        self.store_states(batch.changelog)


def register_scoring(
    app: faust.App,
    topics: Topics,
    codec: WireCodec,
    live: LiveRules,
    clock: Callable[[], datetime],
    partitions: int,
    batch_size: int,
    batch_window_s: float,
    views: SharedViews,
    hash_key: bytes,
    challenger: RuleSet | None = None,
    cache_keys: int = 0,
) -> Any:
    source = app.topic(*topics.input_models(), topics.validated, key_type=bytes, value_type=bytes)
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]
    velocity = app.Table(
        "velocity",
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="per-key velocity state (engine.velocity.VelocityState: a head and a part per day)",
    )
    store = cast(StoreT[bytes, bytes], velocity.data)  # written directly: see the docstring
    scorer = Scorer(
        topics, codec, clock, partitions, store, views, hash_key, challenger, cache_keys
    )

    def on_revoked(*_: Any, **__: Any) -> None:
        scorer.forget()  # partitions move: what this worker cached may be written elsewhere

    app.on_partitions_revoked.connect(on_revoked)

    def owned_partitions() -> frozenset[int]:
        """Partitions assigned to this worker: it owns their keys' state (a rebalance waits
        for the batch in hand before it moves any)."""
        assigned = app.consumer.assignment()
        return frozenset(tp.partition for tp in assigned if tp.topic == topics.validated)

    async def score(stream: faust.StreamT[bytes]) -> None:
        await views.wait_loaded()
        # StreamT does not declare take_events; every Faust stream has it.
        events = cast(Stream[bytes], stream)
        changelog = velocity.changelog_topic.get_topic_name()
        async for records in events.take_events(batch_size, within=batch_window_s):
            rules = live.current  # one version per batch, even if it changes meanwhile
            batch = scorer.begin(owned_partitions())
            for record in records:
                scorer.handle(batch, record, rules)
            scorer.write_states(batch)
            # The batch is acknowledged when this loop moves on: only once all of it is stored.
            positions = await until_stored(
                partial(send_batch, producer, batch, changelog),
                (KafkaError,),
                f"sending {len(batch.outputs)} records and {len(batch.changelog)} states",
            )
            persist_offsets(store, positions)

    return app.agent(source, name="atalaia.scoring")(score)
