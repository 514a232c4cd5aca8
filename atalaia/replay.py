"""``atalaia produce``: replay a CSV or JSONL file of events to an input topic."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atalaia.progress import Progress
from atalaia.publish import OutRecord, publish
from config.settings import Settings
from schemas.codec import DecodeError, WireCodec
from schemas.models import GiftEvent, InputEvent, LoginEvent, TransactionEvent
from streams.topics import Topics

KINDS: dict[str, type[InputEvent]] = {
    "transaction": TransactionEvent,
    "login": LoginEvent,
    "gift": GiftEvent,
}


class ReplayError(Exception):
    """The file cannot be replayed; one line for the operator."""


def _avro_types(schema_field: Any) -> set[str]:
    kind = schema_field["type"]
    options = kind if isinstance(kind, list) else [kind]
    return {o if isinstance(o, str) else o["type"] for o in options}


def _csv_coercers(codec: WireCodec, model: type[InputEvent]) -> dict[str, Any]:
    """How to turn each CSV cell into the JSON type the contract expects."""
    schema = codec.registry.latest(model).parsed
    coercers: dict[str, Any] = {}
    for field in schema["fields"]:
        types = _avro_types(field)
        if types & {"int", "long"}:
            coercers[field["name"]] = lambda v: int(v) if v.lstrip("-").isdigit() else v
        elif "double" in types:
            coercers[field["name"]] = float
        elif "boolean" in types:
            coercers[field["name"]] = lambda v: {"true": True, "false": False}.get(v.lower(), v)
        elif "array" in types:
            coercers[field["name"]] = lambda v: [x for x in v.split("|") if x]
    return coercers


def read_rows(path: Path, codec: WireCodec, model: type[InputEvent]) -> Iterator[dict[str, Any]]:
    """Rows of a ``.csv`` (header line, ``|`` between list items) or ``.jsonl`` file."""
    if not path.is_file():
        raise ReplayError(f"no such file: {path}")
    suffix = path.suffix.lower()
    with path.open(newline="") as handle:
        if suffix == ".jsonl":
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        raise ReplayError(f"{path}:{number}: not valid JSON") from None
        elif suffix == ".csv":
            coercers = _csv_coercers(codec, model)
            for row in csv.DictReader(handle):
                yield {
                    name: coercers.get(name, str)(value)
                    for name, value in row.items()
                    if value not in ("", None)
                }
        else:
            raise ReplayError(f"{path}: expected a .csv or .jsonl file")


def encode_row(codec: WireCodec, model: type[InputEvent], row: dict[str, Any], avro: bool) -> bytes:
    """JSON rows go as they are (the engine validates); Avro needs a valid event first."""
    if not avro:
        return json.dumps(row).encode()
    event = codec.decode(json.dumps(row).encode(), (model,))
    return codec.encode(event)


def produce_main(settings: Settings, path: Path, kind: str, avro: bool) -> int:
    """Replay ``path``; rows that cannot be encoded as Avro are reported by row number."""
    codec = WireCodec()
    model = KINDS[kind]
    topic = Topics(settings.topic_prefix).input_topic_for(model)
    records, rejected = [], 0
    for number, row in enumerate(read_rows(path, codec, model), 1):
        try:
            value = encode_row(codec, model, row, avro)
        except DecodeError as exc:
            print(f"{path}: row {number}: {exc.message}", file=sys.stderr)
            rejected += 1
            continue
        key = row.get("user_id") or row.get("giver_user_id")
        records.append(OutRecord(topic, key.encode() if isinstance(key, str) else None, value))
    sent = asyncio.run(
        publish(settings.bootstrap_servers, records, Progress(len(records), f"-> {topic}"))
    )
    print(f"sent {sent} records to {topic}" + (f"; {rejected} rows rejected" if rejected else ""))
    return 1 if rejected else 0
