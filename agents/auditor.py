"""Auditor agent (``atalaia auditor``): the only writer of the audit chains.

It reads the audit intake (admin calls, list and case changes, whitelist overrides) and the
decisions topic, and appends every record to the chain of its partition: the audit topic's
partition of the same number, one writer each. Write-once by record id (a Faust table of
content hashes), Merkle batches to ``audit-batches`` (``engine.audit_log``).

Outputs are sent before the states are written: a crash in between re-appends the batch with
the same sequence numbers and hashes, i.e. byte-identical records, which ``audit verify``
reports as repeated (and compaction removes); nothing is ever missing from a chain. A
refused second write also raises a CRITICAL ``audit_conflict`` alert (alerts topic, webhooks).

A batch is cut when it is full or ``audit_batch_seconds`` old: at its chain's next record, or,
on a chain gone quiet, by a timer that checks the chains this worker owns every
``min(audit_batch_seconds, 60)`` seconds, so no record waits for traffic to get its root.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.streams import Stream
from faust.types import EventT

from agents.current import PartitionEvent, as_current
from agents.retry import until_stored
from config.rules import AlertRules
from config.settings import Settings
from engine.audit_log import QUIET, ChainState, append_all, cut_if_due, decision_record
from schemas.codec import DecodeError, WireCodec
from schemas.models import AuditBatch, AuditRecord, Decision
from sinks.webhooks import WebhookSender
from streams.metrics import (
    AUDIT_BATCHES,
    AUDIT_CONFLICTS,
    AUDIT_RECORDS,
    AUDIT_REPEATS,
    child_of,
)
from streams.side_producer import SideProducer, SideRecord
from streams.topics import Topics

log = logging.getLogger(__name__)

SEAL_CHECK_MAX_S = 60.0
"""The longest wait between two checks for due batches on quiet chains."""


def register_auditor(
    app: faust.App,
    settings: Settings,
    alert_rules: AlertRules,
    clock: Any,
    batch_size: int,
    window_s: float,
) -> Any:
    topics = Topics(settings.topic_prefix)
    codec = WireCodec()
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]
    webhooks = WebhookSender(settings.alert_webhook_urls)
    app.task(webhooks.run)
    source = app.topic(topics.audit_intake, topics.decisions, key_type=bytes, value_type=bytes)
    chains = app.Table(
        "audit-chains",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="tip and open batch of each audit chain",
    )
    known_ids = app.Table(
        "audit-ids",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="content hash of every audit record id written",
    )

    def incoming(record: EventT[bytes]) -> AuditRecord | None:
        msg = record.message
        try:
            if msg.topic == topics.decisions:
                return decision_record(codec.decode(msg.value, (Decision,)))
            return codec.decode(msg.value, (AuditRecord,))
        except DecodeError as exc:
            log.warning(
                "unreadable audit input %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, exc
            )
            return None

    def batch_output(batch: AuditBatch) -> SideRecord:
        return (topics.audit_batches, batch.batch_id.encode(), codec.encode(batch), None, None)

    # The agent's batches and the timer's cuts both read, change and write a chain's state.
    chain_writes = asyncio.Lock()

    async def audit(stream: faust.StreamT[bytes]) -> None:
        async for records in cast(Stream[bytes], stream).take_events(batch_size, within=window_s):
            async with chain_writes:
                await append_batch(records)

    async def append_batch(records: Sequence[EventT[bytes]]) -> None:
        """Read the chains' states and the ids the batch names, append with the engine
        (``engine.audit_log.append_all``), send what it produced, then store the states."""
        now: datetime = clock()
        chain_states: dict[int, ChainState] = {}
        at: dict[int, EventT[bytes]] = {}  # a record of each chain: where its state lives
        entries: list[tuple[int, AuditRecord]] = []
        known: dict[str, str] = {}
        for record in records:
            entry = incoming(record)
            if entry is None:
                continue
            chain = record.message.partition
            with as_current(record):
                if chain not in chain_states:
                    stored = chains.get(_chain_key(chain))
                    chain_states[chain] = ChainState.from_bytes(stored, chain)
                seen = known_ids.get(entry.audit_id.encode())
            if seen is not None:
                known.setdefault(entry.audit_id, seen.decode())
            at[chain] = record
            entries.append((chain, entry))
        step = append_all(
            chain_states,
            entries,
            known,
            now,
            settings.audit_batch_records,
            settings.audit_batch_seconds,
            alert_rules,
        )
        outputs: list[SideRecord] = [
            (topics.audit, chained.audit_id.encode(), codec.encode(chained), None, chained.chain)
            for chained in step.records
        ]
        for alert in step.alerts:
            log.warning("audit: %s", alert.message)
            outputs.append(
                (topics.alerts, alert.alert_id.encode(), codec.encode(alert), None, None)
            )
        outputs += [batch_output(batch) for batch, _ in step.batches]
        await until_stored(
            partial(producer.send_all, outputs), (KafkaError,), "sending audit records"
        )
        for alert in step.alerts:
            webhooks.enqueue(alert)
        AUDIT_RECORDS.inc(len(step.records))
        AUDIT_CONFLICTS.inc(len(step.alerts))
        AUDIT_REPEATS.inc(step.repeats)
        for _, cause in step.batches:
            child_of(AUDIT_BATCHES, cause).inc()
        chain_of = {entry.audit_id: chain for chain, entry in entries}
        for audit_id, content in step.written.items():
            with as_current(at[chain_of[audit_id]]):
                known_ids[audit_id.encode()] = content.encode()
        for chain, state in chain_states.items():
            with as_current(at[chain]):
                chains[_chain_key(chain)] = state.to_bytes()

    async def cut_quiet_chains() -> None:
        """Cut the due batch of each chain this worker owns. Not while partitions move or
        tables recover: a state read then may be stale, and a cut from it would be wrong."""
        if app.rebalancing or app.in_recovery:
            return
        async with chain_writes:
            now: datetime = clock()
            assigned = app.consumer.assignment()
            owned = {tp.partition for tp in assigned if tp.topic == topics.audit_intake}
            for chain in sorted(owned):
                key = _chain_key(chain)
                at = PartitionEvent(topics.audit_intake, chain)
                with as_current(at):
                    state = ChainState.from_bytes(chains.get(key), chain)
                batch = cut_if_due(state, now, settings.audit_batch_seconds)
                if batch is None:
                    continue
                await until_stored(
                    partial(producer.send_all, [batch_output(batch)]),
                    (KafkaError,),
                    "sending an audit batch",
                )
                with as_current(at):
                    chains[key] = state.to_bytes()
                child_of(AUDIT_BATCHES, QUIET).inc()

    async def settle_cuts(*_: Any, **__: Any) -> None:
        """A rebalance waits for a cut in hand (new ones wait for it to end): the cut's state
        is in the changelog before another worker can recover the chain from it."""
        async with chain_writes:
            await app.producer.flush()

    app.timer(min(float(settings.audit_batch_seconds), SEAL_CHECK_MAX_S))(cut_quiet_chains)
    app.on_partitions_revoked.connect(settle_cuts)
    return app.agent(source, name="atalaia.auditor")(audit)


def _chain_key(chain: int) -> bytes:
    """A chain's key in the chains table."""
    return f"chain:{chain}".encode()
