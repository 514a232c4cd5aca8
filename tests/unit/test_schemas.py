"""The Avro files and the pydantic models describe the same records, field by field."""

from __future__ import annotations

import io
import json
import types
import typing
from datetime import datetime
from enum import Enum
from importlib import resources
from typing import Any

import fastavro
import pytest
from pydantic import AwareDatetime, BaseModel

from schemas.codec import SchemaRegistry, WireCodec
from schemas.models import WIRE_MODELS, AccountState, DeadLetter, Decision, Reason, WireModel
from tests import factories

REGISTRY = SchemaRegistry.load()
LISTING = json.loads(resources.files("schemas").joinpath("registry.json").read_text())


def _raw_schema(model: type[WireModel], version: int | None = None) -> dict[str, Any]:
    """The schema file of ``model`` at ``version`` (default: the latest)."""
    items = [i for i in LISTING["schemas"] if i["subject"] == model.avro_name]
    item = (
        max(items, key=lambda i: i["version"])
        if version is None
        else next(i for i in items if i["version"] == version)
    )
    return json.loads(resources.files("schemas").joinpath(item["file"]).read_text())


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def _base(annotation: Any) -> Any:
    """Unwrap Annotated[...] down to the python type."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _assert_same_type(avro_type: Any, annotation: Any, where: str) -> None:
    annotation = _base(annotation)
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis":
        assert annotation in (datetime, AwareDatetime), where
    elif isinstance(avro_type, dict) and avro_type["type"] == "enum":
        assert issubclass(annotation, Enum), where
        assert [m.value for m in annotation] == avro_type["symbols"], where
    elif isinstance(avro_type, dict) and avro_type["type"] == "array":
        assert typing.get_origin(annotation) is list, where
        _assert_same_type(avro_type["items"], typing.get_args(annotation)[0], where + "[]")
    elif isinstance(avro_type, dict) and avro_type["type"] == "map":
        assert typing.get_origin(annotation) is dict, where
        key, value = typing.get_args(annotation)
        assert key is str, where
        _assert_same_type(avro_type["values"], value, where + "{}")
    elif isinstance(avro_type, dict) and avro_type["type"] == "record":
        assert issubclass(annotation, BaseModel), where
        _assert_fields_agree(avro_type, annotation, where)
    elif isinstance(avro_type, str) and avro_type[:1].isupper():
        # A reference to a named type defined earlier in the schema (e.g. a second Verdict).
        assert annotation.__name__ == avro_type, where
    else:
        expected = {
            "string": str,
            "long": int,
            "int": int,
            "double": float,
            "boolean": bool,
            "bytes": bytes,
        }[avro_type]
        assert annotation is expected, f"{where}: avro {avro_type} vs {annotation}"


def _assert_fields_agree(schema: dict[str, Any], model: type[BaseModel], where: str) -> None:
    avro_fields = schema["fields"]
    assert [f["name"] for f in avro_fields] == list(model.model_fields), where
    for field in avro_fields:
        info = model.model_fields[field["name"]]
        annotation, optional = _strip_optional(info.annotation)
        avro_type = field["type"]
        nullable = isinstance(avro_type, list) and "null" in avro_type
        name = f"{where}.{field['name']}"
        assert nullable == optional, f"{name}: nullability differs"
        if nullable:
            assert field.get("default", "missing") is None and info.default is None, name
            avro_type = next(t for t in avro_type if t != "null")
        elif "default" in field:
            default = info.get_default(call_default_factory=True)
            assert default == field["default"], f"{name}: defaults differ"
        else:
            assert info.is_required(), f"{name}: required in Avro, optional in model"
        _assert_same_type(avro_type, info.annotation if not optional else annotation, name)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.avro_name)
def test_avro_schema_and_model_agree_field_by_field(model: type[WireModel]) -> None:
    _assert_fields_agree(_raw_schema(model), model, model.avro_name)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.avro_name)
def test_every_schema_is_versioned_and_documented(model: type[WireModel]) -> None:
    schema = _raw_schema(model)
    entry = REGISTRY.latest(model)
    assert schema["version"] == entry.version
    assert schema["doc"]
    undocumented = [f["name"] for f in schema["fields"] if not f.get("doc")]
    assert undocumented == []


def test_decisions_written_with_an_older_schema_still_decode() -> None:
    """A v1 Decision (no features) is read with its own writer schema, features default."""
    v1 = next(e for e in REGISTRY.entries() if e.subject == "Decision" and e.version == 1)
    record = {
        "event_id": "e1",
        "event_kind": "gift",
        "event_type": "gift_paid",
        "subject_type": "user",
        "subject_id": "u1",
        "user_id": None,
        "score": 0,
        "band": "LOW",
        "decision": "ALLOW",
        "reasons": [],
        "rule_version": "old",
        "event_occurred_at": 0,
        "decided_at": 0,
        "latency_ms": 1,
    }
    out = io.BytesIO()
    out.write(b"\x00" + v1.schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(out, v1.parsed, record)
    decision = WireCodec(REGISTRY).decode(out.getvalue(), (Decision,))
    assert decision.features == {} and decision.rule_version == "old"


def test_schema_ids_are_unique_and_cover_every_model() -> None:
    ids = [item["id"] for item in LISTING["schemas"]]
    assert len(ids) == len(set(ids))
    assert {e.model for e in REGISTRY.entries()} == set(WIRE_MODELS)


def _samples() -> list[WireModel]:
    decision = Decision(
        event_id="e1",
        event_kind="gift",
        event_type="gift_created",
        subject_type="user",
        subject_id="u1",
        user_id="u1",
        score=100,
        band="CRITICAL",
        decision="BLOCK",
        reasons=[Reason(code="GIFT_AMOUNT_OVER_LIMIT", points=100, detail="over")],
        rule_version="v1",
        event_occurred_at=1_700_000_000_123,
        decided_at=1_700_000_000_456,
        latency_ms=333,
    )
    letter = DeadLetter(
        original_value=b"\xff\x00raw",
        original_key=None,
        source_topic="t",
        source_partition=3,
        source_offset=42,
        error_class="MalformedPayload",
        error_message="bad",
        failed_at=1_700_000_000_000,
    )
    return [
        factories.transaction(),
        factories.transaction(lat=None, network_flags=[]),
        factories.login(),
        factories.gift(),
        factories.gift(event_type="redeem_attempt", amount_cents=None, code_correct=True),
        decision,
        letter,
        AccountState(
            user_id="u1",
            frozen=True,
            reason="CRITICAL block-list hit",
            event_id="e1",
            changed_at=1_700_000_000_000,
            changed_by="engine",
        ),
    ]


@pytest.mark.parametrize("record", _samples(), ids=lambda r: type(r).__name__)
def test_avro_round_trip_is_exact(record: WireModel) -> None:
    codec = WireCodec(REGISTRY)
    framed = codec.encode(record)
    assert framed[0] == 0
    assert int.from_bytes(framed[1:5], "big") == REGISTRY.latest(type(record)).schema_id
    assert codec.decode(framed, (type(record),)) == record


@pytest.mark.parametrize("record", _samples()[:5], ids=lambda r: type(r).__name__)
def test_json_round_trip_is_exact(record: WireModel) -> None:
    codec = WireCodec(REGISTRY)
    assert codec.decode(record.model_dump_json().encode(), (type(record),)) == record


def test_json_accepts_epoch_millis_and_iso_with_offset() -> None:
    codec = WireCodec(REGISTRY)
    base = json.loads(factories.gift().model_dump_json())
    as_millis = codec.decode(
        json.dumps({**base, "occurred_at": 1_763_812_800_123}).encode(), (type(factories.gift()),)
    )
    as_iso = codec.decode(
        json.dumps({**base, "occurred_at": "2025-11-22T09:00:00.123-03:00"}).encode(),
        (type(factories.gift()),),
    )
    assert as_millis.occurred_at == as_iso.occurred_at
    assert as_millis.occurred_at.tzinfo is not None
