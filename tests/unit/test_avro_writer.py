"""The compiled Avro writer emits fastavro's bytes, for every registered schema."""

from __future__ import annotations

import io
import random
import string
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest

from config.rules import load_rules
from engine.decide import decide_event
from engine.learning import LoadedModel, OnlineModel
from engine.velocity import VelocityState
from schemas.avro_writer import compile_writer, long_bytes
from schemas.codec import MAGIC_BYTE, SchemaEntry, SchemaRegistry, WireCodec
from schemas.models import Decision, WireModel
from tests import factories

REGISTRY = SchemaRegistry.load()
RULES = load_rules()


def fastavro_bytes(parsed: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, datum)
    return out.getvalue()


class Datums:
    """Random values of an Avro schema (as fastavro parsed it), edge cases often."""

    def __init__(self, named: dict[str, Any], rng: random.Random) -> None:
        self.named, self.rng = named, rng

    def of(self, schema: Any) -> Any:
        rng = self.rng
        if isinstance(schema, list):  # ["null", X]
            return None if rng.random() < 0.3 else self.of(schema[1])
        if isinstance(schema, str):
            return (
                self._primitive(schema) if schema not in self.named else self.of(self.named[schema])
            )
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-millis":
            offset = timedelta(microseconds=rng.randint(-(10**15), 10**16))  # sub-ms too
            return datetime(1970, 1, 1, tzinfo=UTC) + offset
        if kind == "record":
            return {field["name"]: self.of(field["type"]) for field in schema["fields"]}
        if kind == "enum":
            return rng.choice(schema["symbols"])
        if kind == "array":
            return [self.of(schema["items"]) for _ in range(rng.choice([0, 1, 3, 70]))]
        if kind == "map":
            return {self._text(): self.of(schema["values"]) for _ in range(rng.choice([0, 1, 50]))}
        return self._primitive(kind)

    def _primitive(self, kind: str) -> Any:
        rng = self.rng
        if kind == "string":
            return self._text()
        if kind in ("int", "long"):
            bound = 2**31 if kind == "int" else 2**63
            edges = [0, -1, 1, 63, -64, 64, 4095, 4096, -1025, bound - 1, -bound]
            return rng.choice(edges) if rng.random() < 0.5 else rng.randint(-bound, bound - 1)
        if kind == "double":
            return rng.choice([0.0, -0.0, 1.5, rng.uniform(-1e9, 1e9), 1e-300])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "bytes":
            return rng.randbytes(rng.choice([0, 1, 200]))
        assert kind == "null"
        return None

    def _text(self) -> str:
        letters = string.ascii_letters + "çãé€😀."
        return "".join(self.rng.choice(letters) for _ in range(self.rng.choice([0, 1, 12, 300])))


@pytest.mark.parametrize("entry", REGISTRY.entries(), ids=lambda e: f"{e.subject}.v{e.version}")
def test_every_registered_schema_compiles_to_fastavros_bytes(entry: SchemaEntry) -> None:
    encode = compile_writer(entry.parsed)
    assert encode is not None
    datums = Datums(entry.parsed.get("__named_schemas", {}), random.Random(entry.schema_id))
    for _ in range(60):
        datum = datums.of(entry.parsed)
        assert encode(datum) == fastavro_bytes(entry.parsed, datum)


def decisions() -> list[Decision]:
    """Decisions as the engine builds them: reasons, features, a model's score, actions."""
    model = OnlineModel(RULES.model)
    loaded = LoadedModel("online-2.1", 0, model)
    made = []
    for event in [
        factories.transaction(),
        factories.transaction(amount_cents=9_999_900, lat=None, network_flags=[]),
        factories.login(),
        factories.gift(),
        factories.gift(event_type="redeem_attempt", amount_cents=None, code_correct=False),
    ]:
        outcome = decide_event(VelocityState(), event, RULES, model=loaded)
        at = datetime(2026, 12, 5, 7, 0, 0, 123_000, tzinfo=UTC)
        scored = (outcome.model_score, "online-2.1") if outcome.model_score else None
        made.append(
            factories.decision_of(event, outcome, at, model=scored, label_entities=["card:c1"])
        )
    return made


@pytest.mark.parametrize(
    "record",
    [*decisions(), factories.transaction(), factories.login(), factories.gift()],
    ids=lambda r: type(r).__name__,
)
def test_a_model_is_framed_as_fastavro_frames_its_dict(record: WireModel) -> None:
    entry = REGISTRY.latest(type(record))
    framed = WireCodec(REGISTRY).encode(record)
    assert framed[:5] == bytes([MAGIC_BYTE]) + entry.schema_id.to_bytes(4, "big")
    assert framed[5:] == fastavro_bytes(entry.parsed, record.model_dump())


def test_a_schema_the_writer_does_not_cover_is_left_to_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "Either",
        "fields": [{"name": "value", "type": ["string", "long"]}],
    }
    parsed = fastavro.parse_schema(schema)
    assert compile_writer(parsed) is None
    entry = SchemaEntry(9001, "Either", 1, parsed, Decision)

    class Either:  # what model_dump would give, for the fallback
        @staticmethod
        def model_dump() -> dict[str, Any]:
            return {"value": 7}

    assert entry.frame(Either())[5:] == fastavro_bytes(parsed, {"value": 7})  # type: ignore[arg-type]


def test_a_long_outside_avros_range_is_refused() -> None:
    assert long_bytes(2**63 - 1) == fastavro_bytes("long", 2**63 - 1)
    with pytest.raises(ValueError, match="out of the Avro long range"):
        long_bytes(2**63)


def test_empty_and_self_referring_records_encode_as_fastavro_does() -> None:
    empty = fastavro.parse_schema({"type": "record", "name": "Empty", "fields": []})
    chain = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Link",
            "fields": [
                {"name": "label", "type": "string"},
                {"name": "next", "type": ["null", "Link"]},
            ],
        }
    )
    three = {"label": "a", "next": {"label": "b", "next": {"label": "c", "next": None}}}
    for parsed, datum in ((empty, {}), (chain, three)):
        encode = compile_writer(parsed)
        assert encode is not None and encode(datum) == fastavro_bytes(parsed, datum)


SIGNAL_STORM = """
import os, signal, subprocess, sys, time
from datetime import UTC, datetime
from schemas.avro_writer import compile_writer

class Interrupted(Exception):
    pass

armed = False

def interrupt(signum, frame):
    global armed
    if armed:  # raise only inside the encoding loop below, once per round
        armed = False
        raise Interrupted

FIRE = (
    "import os, signal, sys, time\\n"
    "target = int(sys.argv[1])\\n"
    "while os.getppid() == target:\\n"
    "    os.kill(target, signal.SIGUSR1)\\n"
    "    time.sleep(0.0001)\\n"
)
signal.signal(signal.SIGUSR1, interrupt)
encode = compile_writer({"type": "long", "logicalType": "timestamp-millis"})
moment = datetime(2018, 4, 1, 12, 30, tzinfo=UTC)
# Another process fires, so signals land anywhere in this one (not where it drops the GIL).
firing = subprocess.Popen(
    [sys.executable, "-c", FIRE, str(os.getpid())],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
interrupted = 0
started = time.monotonic()
# A second of signals, and longer on a starved machine until more than 100 have landed.
while time.monotonic() < started + 1.0 or (interrupted <= 100 and time.monotonic() < started + 30):
    try:
        armed = True
        for _ in range(200):
            encode(moment)
        armed = False
    except Interrupted:
        interrupted += 1
firing.kill()
print(interrupted)
"""


def test_encoding_a_timestamp_survives_a_signal_handler_that_raises() -> None:
    """Compiled, a raising handler (SIGTERM in ``atalaia demo``) that landed in the
    timestamp's integer arithmetic aborted the process; it must surface as the exception."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_STORM], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 100  # the handler really ran, and raised, many times
