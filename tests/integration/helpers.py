"""Reading what the engine produced, for assertions."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from atalaia.consume import read_topics
from atalaia.publish import OutRecord, publish
from engine.admission import subject_of
from schemas.codec import WireCodec
from schemas.models import DeadLetter, Decision, InputEvent
from streams.topics import Topics

CODEC = WireCodec()


@dataclass
class Output:
    decisions: list[tuple[ConsumerRecord[bytes, bytes], Decision]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def decided_ids(self) -> set[str]:
        return {d.event_id for _, d in self.decisions}


async def send_events(
    bootstrap: str,
    topics: Topics,
    events: list[InputEvent],
    avro: bool = True,
    rate: float | None = None,
) -> None:
    records = [
        OutRecord(
            topics.input_topic_for(type(e)),
            subject_of(e).key.encode(),
            CODEC.encode(e) if avro else e.model_dump_json().encode(),
        )
        for e in events
    ]
    await publish(bootstrap, records, rate=rate)


async def collect(
    bootstrap: str,
    topics: Topics,
    want_decisions: set[str] | None,
    want_dead_letters: int = 0,
    idle_timeout_s: float = 60.0,
) -> Output:
    """Read decisions and dead letters until all wanted ones arrived, or until silence.

    ``want_decisions=None`` reads everything there is, until ``idle_timeout_s`` of silence.
    """
    out = Output()
    records = read_topics(bootstrap, [topics.decisions, topics.dead_letters], True, idle_timeout_s)
    async with aclosing(records):
        async for record in records:
            if record.topic == topics.decisions:
                out.decisions.append((record, CODEC.decode(record.value, (Decision,))))
            else:
                out.dead_letters.append(CODEC.decode(record.value, (DeadLetter,)))
            if (
                want_decisions is not None
                and want_decisions <= out.decided_ids()
                and len(out.dead_letters) >= want_dead_letters
            ):
                break
    return out
