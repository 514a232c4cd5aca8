"""Case agent: applies case commands (decisions to link, analysts' changes) to each subject's
cases, and publishes the changed cases, the labels of closed ones and their audit records.

Commands are keyed by subject, so one partition owns a subject's cases. A command that
cannot be applied (whatever raised) goes to the dead-letter topic with its class; the next
ones are applied. Outputs are sent
before the state is written: a crash in between re-applies the command, which publishes the
same case version, label and audit record again (all keyed, so harmless), never loses one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import EventT

from engine.audit import case_record
from engine.cases import SubjectCases, apply_command
from schemas.codec import DecodeError, WireCodec
from schemas.dead_letters import dead_letter_of
from schemas.errors import failure_without_values
from schemas.models import CaseCommand
from streams.side_producer import SideProducer, SideRecord
from streams.topics import Topics

log = logging.getLogger(__name__)
CASE_COMMAND_FAILED = "CaseCommandFailed"


def register_cases(app: faust.App, topics: Topics, codec: WireCodec, partitions: int) -> Any:
    source = app.topic(topics.case_commands, key_type=bytes, value_type=bytes)
    producer: SideProducer = app.side_producer  # type: ignore[attr-defined]
    table = app.Table(
        "cases",
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="per-subject investigation cases (engine.cases.SubjectCases as JSON)",
    )

    async def apply(stream: faust.StreamT[bytes]) -> None:
        async for record in stream.events():
            try:
                command = codec.decode(record.value, (CaseCommand,))
            except DecodeError as exc:
                log.warning("unreadable case command at offset %d: %s", record.message.offset, exc)
                continue
            try:
                await apply_one(record, command)
            except KafkaError:
                raise  # the broker failed, not the command: not a dead letter
            except Exception as exc:  # one command must not stop the cases of every subject
                offset, failure = record.message.offset, failure_without_values(exc)
                log.error("case command at offset %d not applied: %s", offset, failure)
                key, letter = dead_letter_of(
                    record.message, CASE_COMMAND_FAILED, type(exc).__name__, datetime.now(UTC)
                )
                await producer.send_all(
                    [(topics.dead_letters, key, codec.encode(letter), None, None)]
                )

    async def apply_one(record: EventT[bytes], command: CaseCommand) -> None:
        """Apply one command: its outputs sent, then the subject's state written."""
        key = record.key if isinstance(record.key, bytes) else b""
        state = SubjectCases.from_bytes(table.get(key))
        previous = state.current  # the case a link or an analyst's change acts on
        applied = apply_command(state, command)
        outputs: list[SideRecord] = [
            (topics.cases, c.case_id.encode(), codec.encode(c), None, None) for c in applied.cases
        ]
        if applied.label is not None:
            label = applied.label
            outputs.append(
                (topics.labels, label.label_id.encode(), codec.encode(label), None, None)
            )
        if applied.cases or applied.refused:
            new = applied.cases[0] if applied.cases else None
            audit = case_record(command, previous, new, applied.refused)
            audit_key = audit.audit_id.encode()
            outputs.append((topics.audit_intake, audit_key, codec.encode(audit), None, None))
        await producer.send_all(outputs)
        table[key] = state.to_bytes()

    return app.agent(source, name="atalaia.cases")(apply)
