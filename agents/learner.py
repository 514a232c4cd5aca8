"""The learner (``atalaia learner``): the single writer of the online models.

It reads every partition of the decisions and labels topics itself (no consumer group: one
learner per deployment) and feeds ``engine.learning.Learner``: decided transactions become
examples, labels are learned once event time reaches them. Every few seconds it publishes
signed model snapshots (``models``, compacted by name) and the known frauds that changed
(``known-frauds``, compacted by entity), then checkpoints.

The checkpoint is exact: model, pending labels, known frauds and the offset reached on every
partition are written together in RocksDB (rocksdict), and a restart seeks to those offsets,
so nothing is learned twice or forgotten. Examples live in the same store; the ones a
checkpointed step learned are deleted only once that checkpoint is written, so a crash
between the two can learn them again from the re-read labels.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from rocksdict import Rdict

from agents.retry import until_stored
from config.rules import RuleSet
from engine.learning import (
    BATCH,
    CHAMPION,
    FLOW_MODELS,
    Example,
    Learner,
    LearnStep,
    flow_rules,
    sealed_snapshot,
)
from engine.model_inputs import is_flow_scored, is_model_scored
from schemas.codec import DecodeError, WireCodec
from schemas.models import Decision, EventKind, KnownFrauds, Label
from streams.metrics import (
    LEARNER_INPUTS,
    LEARNER_MODEL_LABELS,
    LEARNER_SNAPSHOTS,
    LEARNER_UNLABELLED,
    child_of,
)
from streams.side_producer import SideProducer, SideRecord
from streams.stopping import despite_unreachable_broker
from streams.topics import Topics

log = logging.getLogger(__name__)
DECISION_INPUT, LABEL_INPUT = "decision", "label"

_CHECKPOINT = "checkpoint"
_EXAMPLE = "example:"
_ROW = "batch-row:"
_FORGET_EVERY_S = 600.0


class StoredRows(MutableMapping[str, bytes]):
    """The batch model's training rows in RocksDB, under a prefix, in key (occurrence)
    order. Written and deleted at once: a row re-learned after a crash has the same key."""

    def __init__(self, db: Rdict, prefix: str) -> None:
        self._db, self._prefix = db, prefix

    def __getitem__(self, key: str) -> bytes:
        value = self._db.get(self._prefix + key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._db[self._prefix + key] = value

    def __delitem__(self, key: str) -> None:
        self._db.delete(self._prefix + key)

    def __iter__(self) -> Iterator[str]:
        for key in list(self._db.keys(from_key=self._prefix)):
            if not isinstance(key, str) or not key.startswith(self._prefix):
                return
            yield key[len(self._prefix) :]

    def __len__(self) -> int:
        return sum(1 for _ in self)


class StoredExamples(MutableMapping[str, Example]):
    """Examples in RocksDB, with deletions held back until the next checkpoint."""

    def __init__(self, db: Rdict, prefix: str) -> None:
        self._db, self._prefix = db, prefix
        self._deleted: set[str] = set()

    def __getitem__(self, key: str) -> Example:
        if key in self._deleted:
            raise KeyError(key)
        value = self._db.get(self._prefix + key)
        if value is None:
            raise KeyError(key)
        return Example(*value)

    def __setitem__(self, key: str, value: Example) -> None:
        self._deleted.discard(key)
        self._db[self._prefix + key] = (
            value.inputs,
            value.occurred_ms,
            value.label_entities,
            value.tree_values,
        )

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        for key in self._db.keys(from_key=self._prefix):
            if not isinstance(key, str) or not key.startswith(self._prefix):
                return
            name = key[len(self._prefix) :]
            if name not in self._deleted:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def commit(self) -> None:
        for key in self._deleted:
            self._db.delete(self._prefix + key)
        self._deleted.clear()


@dataclass
class _Model:
    name: str
    rules: RuleSet
    learner: Learner
    examples: StoredExamples
    sequence: int = 0
    changed: bool = False
    kind: EventKind = EventKind.TRANSACTION
    """The flow whose decisions it learns from."""

    @property
    def family(self) -> str:
        return self.learner.rules.family


class LearnerProcess:
    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        store_dir: Path,
        hash_key: bytes,
        rules: dict[str, RuleSet],
        snapshot_s: float,
        label_wait_ms: int,
        clock: Any,
    ) -> None:
        self.servers, self.topics, self.hash_key = bootstrap_servers, topics, hash_key
        self.snapshot_s, self.label_wait_ms, self.clock = snapshot_s, label_wait_ms, clock
        self.codec = WireCodec()
        store_dir.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(store_dir))
        stored = self.db.get(_CHECKPOINT)
        saved = pickle.loads(stored) if stored is not None else None
        self.offsets: dict[tuple[str, int], int] = saved["offsets"] if saved else {}
        self.models: dict[str, _Model] = {}
        for name, ruleset in rules.items():
            examples = StoredExamples(self.db, f"{_EXAMPLE}{name}:")
            # The champion's learner trains the batch model too.
            rows = StoredRows(self.db, f"{_ROW}{name}:") if name == CHAMPION else None
            state = saved["models"].get(name) if saved else None
            horizon_ms = ruleset.velocity.horizon_s * 1000
            if state is not None and state["family"] == ruleset.model.family:
                learner: Learner = state["learner"]
                learner.resume(ruleset.model, examples, rows)
                sequence = state["sequence"]
            else:
                learner, sequence = Learner(ruleset.model, horizon_ms, examples, rows), 0
            # A fresh model is published at once: workers score from the first event on
            # (the anomaly score, until labels come).
            self.models[name] = _Model(name, ruleset, learner, examples, sequence, sequence == 0)
        champion = rules[CHAMPION]
        if champion.model.flows.enabled:
            for kind, name in FLOW_MODELS.items():
                self.models[name] = self._flow_model(name, kind, champion, saved)
        self.known_changed: set[str] = set()

    def _flow_model(
        self, name: str, kind: EventKind, ruleset: RuleSet, saved: dict[str, Any] | None
    ) -> _Model:
        """The online model of a flow (logins, gifts), from its checkpoint when it holds one
        of the same family."""
        examples = StoredExamples(self.db, f"{_EXAMPLE}{name}:")
        state = saved["models"].get(name) if saved else None
        rules = flow_rules(ruleset.model)
        if state is not None and state["family"] == rules.family:
            learner: Learner = state["learner"]
            learner.resume(rules, examples, None)
            sequence = state["sequence"]
        else:
            horizon_ms = ruleset.velocity.horizon_s * 1000
            learner, sequence = Learner.for_flow(ruleset.model, horizon_ms, examples), 0
        return _Model(name, ruleset, learner, examples, sequence, sequence == 0, kind)

    def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            if record.topic == self.topics.decisions:
                decision = self.codec.decode(record.value, (Decision,))
                child_of(LEARNER_INPUTS, DECISION_INPUT).inc()
                features = decision.features
                kind = decision.event_kind
                if is_model_scored(features) or is_flow_scored(features):
                    at_ms = int(decision.event_occurred_at.timestamp() * 1000)
                    for model in self.models.values():
                        if model.kind is not kind:
                            continue
                        step = model.learner.observe_decision(
                            decision.event_id, at_ms, features, decision.label_entities
                        )
                        self._changed(model, step)
            else:
                label = self.codec.decode(record.value, (Label,))
                child_of(LEARNER_INPUTS, LABEL_INPUT).inc()
                labelled_ms = int(label.labelled_at.timestamp() * 1000)
                for model in self.models.values():
                    step = model.learner.observe_label(label.event_ids, label.is_fraud, labelled_ms)
                    self._changed(model, step)
        except DecodeError as exc:
            log.warning(
                "learner skips unreadable %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
        self.offsets[(record.topic, record.partition)] = record.offset + 1

    def _changed(self, model: _Model, step: LearnStep) -> None:
        model.changed = True
        if model.name == CHAMPION:
            self.known_changed |= step.entities

    def outputs(self) -> list[SideRecord]:
        """Snapshots of the models that changed and the known frauds that changed."""
        now: datetime = self.clock()
        out: list[SideRecord] = []
        for model in self.models.values():
            if not model.changed:
                continue
            model.sequence += 1
            learner = model.learner
            snapshot = sealed_snapshot(
                model.name,
                f"{model.family}.{model.sequence}",
                learner.model,
                learner.known_until_ms,
                self.hash_key,
                now,
            )
            value = self.codec.encode(snapshot)
            out.append((self.topics.models, model.name.encode(), value, None, None))
            child_of(LEARNER_SNAPSHOTS, model.name).inc()
            child_of(LEARNER_MODEL_LABELS, model.name).set(snapshot.labels)
        champion = self.models[CHAMPION].learner
        trees = champion.retrain()
        if trees is not None and champion.batch is not None:
            version = f"{trees.family}.{champion.batch.trainings}"
            known = trees.known_until_ms
            snapshot = sealed_snapshot(BATCH, version, trees, known, self.hash_key, now)
            out.append(
                (self.topics.models, BATCH.encode(), self.codec.encode(snapshot), None, None)
            )
            child_of(LEARNER_SNAPSHOTS, BATCH).inc()
            child_of(LEARNER_MODEL_LABELS, BATCH).set(trees.labels)
            log.info(
                "batch model %s trained on %d labels (%d frauds)",
                version,
                trees.labels,
                trees.frauds,
            )
        for entity in sorted(self.known_changed):
            frauds = champion.known.of(entity)
            updated = max(f.labelled_at for f in frauds) if frauds else now
            record = KnownFrauds(entity_key=entity, frauds=frauds, updated_at=updated)
            value = self.codec.encode(record)
            out.append((self.topics.known_frauds, entity.encode(), value, None, None))
        return out

    def checkpoint(self) -> None:
        """Model, pending labels, known frauds and offsets in one write; then the deletions.
        Pickled once, to bytes, with each learner's examples and batch training rows left out
        (stored on their own)."""
        kept = {name: m.learner.examples for name, m in self.models.items()}
        rows = {name: m.learner.batch.rows for name, m in self.models.items() if m.learner.batch}
        try:
            for model in self.models.values():
                model.learner.examples = {}
                if model.learner.batch is not None:
                    model.learner.batch.rows = {}
            state = pickle.dumps(
                {
                    "offsets": dict(self.offsets),
                    "models": {
                        name: {
                            "family": m.family,
                            "sequence": m.sequence,
                            "learner": m.learner,
                        }
                        for name, m in self.models.items()
                    },
                },
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        finally:
            for name, model in self.models.items():
                model.learner.examples = kept[name]
                if model.learner.batch is not None:
                    model.learner.batch.rows = rows[name]
        self.db[_CHECKPOINT] = state
        self.db.flush()
        for model in self.models.values():
            model.examples.commit()
            model.changed = False
        self.known_changed.clear()

    def forget_stale(self) -> None:
        for model in self.models.values():
            dropped = model.learner.forget_older_than(self.label_wait_ms)
            if dropped:
                log.info("learner %s: %d decisions had no label in time", model.name, dropped)
                child_of(LEARNER_UNLABELLED, model.name).inc(dropped)

    def close(self) -> None:
        self.db.close()


async def run_learner(process: LearnerProcess, stop: asyncio.Event | None = None) -> None:
    """Consume, learn and publish until ``stop`` is set (forever without one)."""
    topics = [process.topics.decisions, process.topics.labels]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=process.servers, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    producer = SideProducer(process.servers)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        for tp in partitions:
            offset = process.offsets.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        await _publish(process, producer)
        last_snapshot = last_forget = time.monotonic()
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    process.handle(record)
            now = time.monotonic()
            if now - last_forget >= _FORGET_EVERY_S:
                process.forget_stale()
                last_forget = now
            if now - last_snapshot >= process.snapshot_s:
                await _publish(process, producer)
                last_snapshot = now
        await _publish(process, producer)
    finally:
        await despite_unreachable_broker(consumer.stop())
        await producer.stop()


async def _publish(process: LearnerProcess, producer: SideProducer) -> None:
    records = process.outputs()
    if records:
        await until_stored(
            partial(producer.send_all, records),
            (Exception,),
            f"sending {len(records)} learner records",
        )
    process.checkpoint()
