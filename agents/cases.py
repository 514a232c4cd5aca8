"""Case agent: applies case commands (decisions to link, analysts' changes) to each subject's
cases, and publishes the changed cases, the labels of closed ones and their audit records.

Commands are keyed by subject, so one partition owns a subject's cases. Outputs are sent
before the state is written: a crash in between re-applies the command, which publishes the
same case version, label and audit record again (all keyed, so harmless), never loses one.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from engine.audit import case_record
from engine.cases import SubjectCases, apply_command
from schemas.codec import DecodeError, WireCodec
from schemas.models import CaseCommand
from streams.side_producer import SideProducer, SideRecord
from streams.topics import Topics

log = logging.getLogger(__name__)


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
            key = record.key if isinstance(record.key, bytes) else b""
            state = SubjectCases.from_bytes(table.get(key))
            previous = state.current  # the case a link or an analyst's change acts on
            applied = apply_command(state, command)
            outputs: list[SideRecord] = [
                (topics.cases, c.case_id.encode(), codec.encode(c), None, None)
                for c in applied.cases
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
