"""Confluent-framed Avro and JSON codec for every topic.

Framing is the Confluent wire format (magic byte ``0`` + 4-byte big-endian schema id +
schemaless Avro), with ids taken from ``schemas/registry.json``, so standard Kafka tooling
can read our topics and a Schema Registry can be adopted later with the same ids.
Schemas are parsed once, when the codec is built. Decoding never echoes field values in its
error messages: inputs may carry personal data and the reasons go to logs and the DLQ.

Every failure to decode is a ``DecodeError`` whose ``error_class`` names it (the DLQ
category, the API's error): never another exception, whatever the bytes. Input events are
bounded before they are parsed (``InputBounds``): record size, JSON nesting depth, number
and string length.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, TypeVar

import fastavro
from pydantic import ValidationError

from schemas.avro_writer import compile_writer
from schemas.errors import describe_validation_error
from schemas.models import INPUT_MODELS, WIRE_MODELS, InputEvent, WireModel
from schemas.pii import pii_kind

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
FRAME_HEADER_BYTES = _HEADER.size
"""Magic byte and schema id before a framed Avro body."""

M = TypeVar("M", bound=WireModel)


MALFORMED = "MalformedPayload"
TOO_LARGE = "RecordTooLarge"
TOO_DEEP = "NestingTooDeep"
NUMBER_OUT_OF_RANGE = "NumberOutOfRange"
STRING_TOO_LONG = "StringTooLong"
INVALID = "ValidationError"
UNKNOWN_SCHEMA = "UnknownSchemaId"
NOT_ACCEPTED = "SchemaNotAccepted"


class DecodeError(Exception):
    """A record that cannot be accepted; ``error_class`` is the DLQ category.
    ``raw_pii_fields``: the ``*_hash`` fields that held what looks like raw personal data
    (named, never shown)."""

    def __init__(
        self, error_class: str, message: str, raw_pii_fields: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.raw_pii_fields = raw_pii_fields


@dataclass(frozen=True)
class InputBounds:
    """Structural limits of an input event, checked before and while it is parsed: an event
    is a few hundred bytes, so these only ever stop hostile or broken records."""

    max_record_bytes: int = 64 * 1024
    max_depth: int = 4
    """Levels of JSON nesting (an event is an object holding lists of strings: 2)."""
    max_number_chars: int = 24
    """Characters of one JSON number (a long has at most 20, with its sign)."""
    max_string_chars: int = 4096
    """Characters of one JSON string (no field of an event allows more than 512)."""


def _bounded_json(data: bytes, bounds: InputBounds) -> Any:
    """``data`` parsed as JSON within ``bounds``; DecodeError otherwise."""

    def number(text: str) -> None:
        if len(text) > bounds.max_number_chars:
            raise DecodeError(
                NUMBER_OUT_OF_RANGE,
                f"a number of {len(text)} characters (at most {bounds.max_number_chars})",
            )

    def whole(text: str) -> int:
        number(text)
        return int(text)

    def fraction(text: str) -> float:
        number(text)
        value = float(text)
        if not math.isfinite(value):
            raise DecodeError(NUMBER_OUT_OF_RANGE, "a number beyond the range of a double")
        return value

    def constant(name: str) -> None:
        raise DecodeError(NUMBER_OUT_OF_RANGE, f"{name} is not a JSON number")

    try:
        parsed = json.loads(data, parse_int=whole, parse_float=fraction, parse_constant=constant)
    except RecursionError:
        raise DecodeError(TOO_DEEP, f"nested deeper than {bounds.max_depth} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DecodeError(MALFORMED, f"invalid JSON{where}") from None
    _check_shape(parsed, bounds)
    return parsed


def _check_shape(parsed: Any, bounds: InputBounds) -> None:
    """Depth and string lengths of a parsed JSON value (walked without recursion); text that
    is not valid Unicode (a lone surrogate escape) is refused too."""
    pending = [(parsed, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            pending.extend((v, depth + 1) for v in value.values())
            pending.extend((k, depth) for k in value)
        elif isinstance(value, list):
            pending.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            if len(value) > bounds.max_string_chars:
                raise DecodeError(
                    STRING_TOO_LONG,
                    f"a string of {len(value)} characters (at most {bounds.max_string_chars})",
                )
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    raise DecodeError(MALFORMED, "a string that is not valid Unicode") from None
            continue
        else:
            continue
        if depth > bounds.max_depth:
            raise DecodeError(TOO_DEEP, f"nested deeper than {bounds.max_depth} levels")


@dataclass(frozen=True)
class SchemaEntry:
    schema_id: int
    subject: str
    version: int
    parsed: Any
    model: type[WireModel]

    @cached_property
    def frame(self) -> Callable[[WireModel], bytes]:
        """A record framed with this schema: compiled once (``schemas.avro_writer``), or
        fastavro on the record's dict for a schema the compiled writer does not cover."""
        header = _HEADER.pack(MAGIC_BYTE, self.schema_id)
        body = compile_writer(self.parsed)
        if body is not None:
            return lambda record: header + body(record)

        def through_fastavro(record: WireModel) -> bytes:
            out = io.BytesIO()
            out.write(header)
            fastavro.schemaless_writer(out, self.parsed, record.model_dump())
            return out.getvalue()

        return through_fastavro


class SchemaRegistry:
    """The schema list kept in the repo, parsed once: id <-> schema <-> pydantic model."""

    def __init__(self, entries: list[SchemaEntry]) -> None:
        self._by_id = {e.schema_id: e for e in entries}
        latest: dict[type[WireModel], SchemaEntry] = {}
        for entry in sorted(entries, key=lambda e: e.version):
            latest[entry.model] = entry
        self._latest_by_model = latest

    @classmethod
    def load(cls) -> SchemaRegistry:
        base = resources.files("schemas")
        listing = json.loads(base.joinpath("registry.json").read_text())
        models = {m.avro_name: m for m in WIRE_MODELS}
        entries = []
        for item in listing["schemas"]:
            raw = json.loads(base.joinpath(item["file"]).read_text())
            entries.append(
                SchemaEntry(
                    schema_id=item["id"],
                    subject=item["subject"],
                    version=item["version"],
                    parsed=fastavro.parse_schema(raw),
                    model=models[raw["name"]],
                )
            )
        return cls(entries)

    def by_id(self, schema_id: int) -> SchemaEntry | None:
        return self._by_id.get(schema_id)

    def latest(self, model: type[WireModel]) -> SchemaEntry:
        return self._latest_by_model[model]

    def entries(self) -> list[SchemaEntry]:
        return list(self._by_id.values())


class WireCodec:
    """Encodes models to framed Avro; decodes framed Avro or JSON into validated models."""

    def __init__(
        self, registry: SchemaRegistry | None = None, bounds: InputBounds | None = None
    ) -> None:
        self.registry = registry or SchemaRegistry.load()
        self.bounds = bounds or InputBounds()

    def encode(self, record: WireModel) -> bytes:
        return self.registry.latest(type(record)).frame(record)

    def decode(self, data: bytes | None, accepted: tuple[type[M], ...]) -> M:
        """Decode one record value that must be one of ``accepted``.

        Framed Avro is recognised by its magic byte; a JSON object (which must then match
        exactly one accepted model, normally there is one per input topic) otherwise. Input
        events are held to ``bounds`` (other records are written by the engine itself).
        """
        if not data:
            raise DecodeError(MALFORMED, "empty record value")
        bounded = all(model in INPUT_MODELS for model in accepted)
        if bounded and len(data) > self.bounds.max_record_bytes:
            raise DecodeError(
                TOO_LARGE,
                f"{len(data)} bytes (an input record holds at most {self.bounds.max_record_bytes})",
            )
        if data[0] == MAGIC_BYTE:
            return self._decode_avro(data, accepted)
        if data.lstrip()[:1] == b"{":
            return self._decode_json(data, accepted, bounded)
        raise DecodeError(
            MALFORMED,
            f"value is neither Confluent-framed Avro (magic byte 0x00) nor a JSON object "
            f"(first byte 0x{data[0]:02x}, {len(data)} bytes)",
        )

    def decode_event(self, data: bytes | None) -> InputEvent:
        """Decode any input event (the validated topic carries all three kinds)."""
        event = self.decode(data, INPUT_MODELS)
        if not isinstance(event, INPUT_MODELS):
            raise DecodeError(NOT_ACCEPTED, f"{type(event).__name__} is not an event")
        return event

    def _decode_avro(self, data: bytes, accepted: tuple[type[M], ...]) -> M:
        if len(data) < _HEADER.size:
            raise DecodeError(MALFORMED, f"Avro frame too short ({len(data)} bytes)")
        _, schema_id = _HEADER.unpack_from(data)
        entry = self.registry.by_id(schema_id)
        if entry is None:
            raise DecodeError(UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")
        if entry.model not in accepted:
            names = ", ".join(m.avro_name for m in accepted)
            raise DecodeError(
                NOT_ACCEPTED,
                f"schema id {schema_id} ({entry.subject}) is not accepted here (expected {names})",
            )
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            fields = fastavro.schemaless_reader(body, entry.parsed, None)
        except Exception as exc:  # fastavro raises many types on corrupt bytes
            raise DecodeError(
                MALFORMED,
                f"Avro body does not match schema id {schema_id} ({type(exc).__name__})",
            ) from None
        if body.tell() != len(data):
            raise DecodeError(
                MALFORMED,
                f"{len(data) - body.tell()} trailing bytes after the Avro record "
                f"(schema id {schema_id})",
            )
        return self._validate(entry.model, fields)  # type: ignore[arg-type]

    def _decode_json(self, data: bytes, accepted: tuple[type[M], ...], bounded: bool) -> M:
        if len(accepted) != 1:
            raise DecodeError(NOT_ACCEPTED, "JSON is only accepted on single-kind topics")
        bounds = self.bounds if bounded else _UNBOUNDED
        return self._validate(accepted[0], _bounded_json(data, bounds))

    @staticmethod
    def _validate(model: type[M], fields: dict[str, Any]) -> M:
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise DecodeError(
                INVALID,
                f"{model.avro_name}: {describe_validation_error(exc)}",
                raw_pii_fields(fields),
            ) from None


def raw_pii_fields(fields: Any) -> tuple[str, ...]:
    """The ``*_hash`` fields of ``fields`` holding what looks like raw personal data (an
    e-mail, phone, CPF/CNPJ...) instead of a digest: an upstream bug leaking it."""
    if not isinstance(fields, dict):
        return ()
    return tuple(
        name
        for name, value in fields.items()
        if isinstance(name, str)
        and name.endswith("_hash")
        and isinstance(value, str)
        and len(value) <= 512
        and pii_kind(value) is not None
    )


_UNBOUNDED = InputBounds(
    max_record_bytes=2**62, max_depth=64, max_number_chars=400, max_string_chars=2**62
)
"""Records the engine writes itself: only what keeps parsing safe (no deep recursion, no
number too long to convert)."""
