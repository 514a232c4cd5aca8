"""Confluent-framed Avro and JSON codec for every topic.

Framing is the Confluent wire format (magic byte ``0`` + 4-byte big-endian schema id +
schemaless Avro), with ids taken from ``schemas/registry.json``, so standard Kafka tooling
can read our topics and a Schema Registry can be adopted later with the same ids.
Schemas are parsed once, when the codec is built. Decoding never echoes field values in its
error messages: inputs may carry personal data and the reasons go to logs and the DLQ.
"""

from __future__ import annotations

import io
import json
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

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")

M = TypeVar("M", bound=WireModel)


class DecodeError(Exception):
    """A record that cannot be accepted; ``error_class`` is the DLQ category."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


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

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or SchemaRegistry.load()

    def encode(self, record: WireModel) -> bytes:
        return self.registry.latest(type(record)).frame(record)

    def decode(self, data: bytes | None, accepted: tuple[type[M], ...]) -> M:
        """Decode one record value that must be one of ``accepted``.

        Framed Avro is recognised by its magic byte; a JSON object (which must then match
        exactly one accepted model, normally there is one per input topic) otherwise.
        """
        if not data:
            raise DecodeError("MalformedPayload", "empty record value")
        if data[0] == MAGIC_BYTE:
            return self._decode_avro(data, accepted)
        if data.lstrip()[:1] == b"{":
            return self._decode_json(data, accepted)
        raise DecodeError(
            "MalformedPayload",
            f"value is neither Confluent-framed Avro (magic byte 0x00) nor a JSON object "
            f"(first byte 0x{data[0]:02x}, {len(data)} bytes)",
        )

    def decode_event(self, data: bytes | None) -> InputEvent:
        """Decode any input event (the validated topic carries all three kinds)."""
        event = self.decode(data, INPUT_MODELS)
        if not isinstance(event, INPUT_MODELS):
            raise DecodeError("SchemaNotAccepted", f"{type(event).__name__} is not an event")
        return event

    def _decode_avro(self, data: bytes, accepted: tuple[type[M], ...]) -> M:
        if len(data) < _HEADER.size:
            raise DecodeError("MalformedPayload", f"Avro frame too short ({len(data)} bytes)")
        _, schema_id = _HEADER.unpack_from(data)
        entry = self.registry.by_id(schema_id)
        if entry is None:
            raise DecodeError("UnknownSchemaId", f"schema id {schema_id} is not registered")
        if entry.model not in accepted:
            names = ", ".join(m.avro_name for m in accepted)
            raise DecodeError(
                "SchemaNotAccepted",
                f"schema id {schema_id} ({entry.subject}) is not accepted here (expected {names})",
            )
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            fields = fastavro.schemaless_reader(body, entry.parsed, None)
        except Exception as exc:  # fastavro raises many types on corrupt bytes
            raise DecodeError(
                "MalformedPayload",
                f"Avro body does not match schema id {schema_id} ({type(exc).__name__})",
            ) from None
        if body.tell() != len(data):
            raise DecodeError(
                "MalformedPayload",
                f"{len(data) - body.tell()} trailing bytes after the Avro record "
                f"(schema id {schema_id})",
            )
        return self._validate(entry.model, fields)  # type: ignore[arg-type]

    def _decode_json(self, data: bytes, accepted: tuple[type[M], ...]) -> M:
        try:
            fields = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            where = f" at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise DecodeError("MalformedPayload", f"invalid JSON{where}") from None
        if len(accepted) != 1:
            raise DecodeError("SchemaNotAccepted", "JSON is only accepted on single-kind topics")
        return self._validate(accepted[0], fields)

    @staticmethod
    def _validate(model: type[M], fields: dict[str, Any]) -> M:
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise DecodeError(
                "ValidationError", f"{model.avro_name}: {describe_validation_error(exc)}"
            ) from None
