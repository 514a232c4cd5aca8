"""Hostile and malformed input records, from a seeded generator (same seed, same records).

Each record names its category (what the attack is), the topic kind it is sent to and the
dead-letter classes that may refuse it. The categories cover what broke a running deployment
from outside: nesting, long numbers, timestamps out of range or of the wrong type, the largest
amounts, oversized records and strings, raw personal data in hashed fields, bytes that are
neither Avro nor JSON, and foreign records on the re-route topic. ``valid_events`` makes the
ordinary traffic they are mixed into, edge cases that must still be decided included.
"""

from __future__ import annotations

import copy
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro

from schemas.codec import WireCodec
from schemas.models import GiftEvent, InputEvent, LoginEvent, TransactionEvent
from tests import factories

CODEC = WireCodec()
REGISTRY = CODEC.registry

TRANSACTIONS, LOGINS, GIFTS, VALIDATED = "transactions", "logins", "gifts", "validated"
"""Topic kinds: the three input topics and the re-route topic."""
KIND_MODEL: dict[str, type[InputEvent]] = {
    TRANSACTIONS: TransactionEvent,
    LOGINS: LoginEvent,
    GIFTS: GiftEvent,
}

MALFORMED = "MalformedPayload"
VALIDATION = "ValidationError"
TOO_LARGE = "RecordTooLarge"
TOO_DEEP = "NestingTooDeep"
NUMBER = "NumberOutOfRange"
STRING = "StringTooLong"
AMOUNT = "AmountAboveLimit"
FUTURE = "FutureTimestamp"
UNKNOWN_SCHEMA = "UnknownSchemaId"
NOT_ACCEPTED = "SchemaNotAccepted"

MAX_AMOUNT = 1_000_000_000_000
"""The largest amount the shipped rules accept in each flow: R$ 10 billion in centavos."""


@dataclass(frozen=True)
class Hostile:
    category: str
    kind: str
    key: bytes | None
    value: bytes | None
    refused_as: frozenset[str]
    """Dead-letter classes that may refuse it (more than one where checks overlap)."""


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _fields(event: InputEvent) -> dict[str, Any]:
    return json.loads(event.model_dump_json())  # type: ignore[no-any-return]


def _event(kind: str, rng: random.Random, user: str) -> InputEvent:
    at = datetime.now(UTC) - timedelta(seconds=rng.randint(0, 600))
    if kind == TRANSACTIONS:
        return factories.transaction(user_id=user, occurred_at=at)
    if kind == LOGINS:
        return factories.login(user_id=user, occurred_at=at)
    return factories.gift(giver_user_id=user, occurred_at=at)


def _json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


def _plain_schema(model: type[InputEvent]) -> Any:
    """The model's latest Avro schema with logical types dropped: longs written raw."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "logicalType"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    entry = REGISTRY.latest(model)
    return entry.schema_id, fastavro.parse_schema(strip(copy.deepcopy(entry.parsed)))


def raw_avro(model: type[InputEvent], fields: dict[str, Any]) -> bytes:
    """Confluent-framed Avro of ``fields`` as given (times as raw longs, any long values)."""
    schema_id, schema = _plain_schema(model)
    out = io.BytesIO()
    out.write(b"\x00" + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(out, schema, fields)
    return out.getvalue()


def _avro_fields(event: InputEvent, **changes: Any) -> dict[str, Any]:
    fields = event.model_dump(mode="python")
    for name, value in fields.items():
        if isinstance(value, datetime):
            fields[name] = int(value.timestamp() * 1000)
        elif hasattr(value, "value"):
            fields[name] = value.value
    fields["network_flags"] = [f.value for f in event.network_flags]
    return {**fields, **changes}


Maker = Callable[[random.Random, str, str], tuple[bytes | None, frozenset[str]]]
"""(rng, topic kind, a user id) -> the record value and the classes that may refuse it."""


def _of(*classes: str) -> frozenset[str]:
    return frozenset(classes)


def _garbage(rng: random.Random, _kind: str, _user: str) -> tuple[bytes | None, frozenset[str]]:
    first = rng.choice([b"\xde", b"\xff", b"[", b'"', b"1", b"h", b"\x01", b" ", b"\xef\xbb\xbf{"])
    return first + rng.randbytes(rng.randint(0, 300)), _of(MALFORMED)


def _empty(rng: random.Random, _kind: str, _user: str) -> tuple[bytes | None, frozenset[str]]:
    return rng.choice([b"", None, b"   ", b"\n"]), _of(MALFORMED)


def _truncated_avro(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    framed = CODEC.encode(_event(_input(kind, rng), rng, user))
    cut = rng.randint(5, len(framed) - 1)
    return framed[:cut], _of(MALFORMED)


def _padded_avro(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    framed = CODEC.encode(_event(_input(kind, rng), rng, user))
    return framed + rng.randbytes(rng.randint(1, 40)), _of(MALFORMED)


def _corrupt_avro(rng: random.Random, kind: str, _user: str) -> tuple[bytes, frozenset[str]]:
    """A registered header, then random bytes, or a string length prefix of ~2^62."""
    schema_id = REGISTRY.latest(KIND_MODEL[_input(kind, rng)]).schema_id
    header = b"\x00" + schema_id.to_bytes(4, "big")
    if rng.random() < 0.5:
        return header + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 20, _of(MALFORMED)
    return header + rng.randbytes(rng.randint(0, 200)), _of(MALFORMED, VALIDATION)


def _unknown_schema(rng: random.Random, _kind: str, _user: str) -> tuple[bytes, frozenset[str]]:
    schema_id = rng.choice([0, 1, 999, 2**31, 2**32 - 1, 1099, 9999])
    return b"\x00" + schema_id.to_bytes(4, "big") + rng.randbytes(30), _of(UNKNOWN_SCHEMA)


def _wrong_schema(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    """A valid record of another model (a decision, or another topic's event)."""
    if kind == VALIDATED:
        event = factories.transaction(user_id=user)
        (outcome,) = factories.run_all([event])
        decision = factories.decision_of(event, outcome, datetime.now(UTC))
        return CODEC.encode(decision), _of(NOT_ACCEPTED)
    other = rng.choice([k for k in KIND_MODEL if k != kind])
    return CODEC.encode(_event(other, rng, user)), _of(NOT_ACCEPTED)


def _input(kind: str, rng: random.Random) -> str:
    """The event kind a record for topic ``kind`` pretends to be."""
    return rng.choice(list(KIND_MODEL)) if kind == VALIDATED else kind


def _json_maker(mutate: Callable[[random.Random, dict[str, Any]], Any], *classes: str) -> Maker:
    """JSON of a valid event of the topic's kind, changed by ``mutate`` (which may return
    the whole text to send instead of changing the fields)."""

    def make(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
        chosen = _input(kind, rng)
        fields = _fields(_event(chosen, rng, user))
        text = mutate(rng, fields)
        value = text if isinstance(text, bytes) else _json(fields)
        if kind == VALIDATED:  # JSON names no schema: only single-kind topics take it
            return value, _of(*classes, NOT_ACCEPTED)
        return value, _of(*classes)

    return make


def _deep(rng: random.Random, fields: dict[str, Any]) -> bytes:
    depth = rng.choice([50, 200, 1_000, 5_000, 12_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nested = opener * depth + "1" + closer * depth
    field = rng.choice(["network_flags", "extra", "user_id", "lat"])
    text = json.dumps(fields)[:-1] + f', "{field}": {nested}}}'
    return text.encode()


def _long_number(rng: random.Random, fields: dict[str, Any]) -> bytes:
    digits = rng.choice([25, 400, 4_301, 5_000, 20_000])
    number = rng.choice(["", "-"]) + "9" * digits
    field = rng.choice(["amount_cents", "occurred_at", "lat", "lon"])
    fields[field] = 0
    text = json.dumps(fields).replace(f'"{field}": 0', f'"{field}": {number}')
    return text.encode()


def _odd_number(rng: random.Random, fields: dict[str, Any]) -> bytes:
    literal = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0." + "1" * 500])
    field = rng.choice(["amount_cents", "lat", "lon", "occurred_at"])
    fields[field] = 0
    return json.dumps(fields).replace(f'"{field}": 0', f'"{field}": {literal}').encode()


def _timestamp(rng: random.Random, fields: dict[str, Any]) -> None:
    now = _now_ms()
    fields["occurred_at"] = rng.choice(
        [
            10**20,
            -(10**20),
            2**63,
            2**63 - 1,
            -1,
            253_402_300_800_000,  # year 10000
            now / 1000,  # seconds, as a float
            float(now),
            now + 0.5,
            now // 1000,  # seconds, an integer: January 1970 read as milliseconds
            str(now),
            str(now // 1000),
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0000-00-00T00:00:00Z",
            "2025-11-22",
            "2025-11-22T10:00:00",
            "22/11/2025 10:00",
            "now",
            "",
            True,
            None,
            [now],
            {"ms": now},
            "1e20",
            "P1D",
        ]
    )


def _future(rng: random.Random, fields: dict[str, Any]) -> None:
    days = rng.choice([2, 30, 365, 3_650])
    fields["occurred_at"] = _now_ms() + days * 86_400_000


def _huge_amount(rng: random.Random, fields: dict[str, Any]) -> None:
    if "amount_cents" not in fields or fields.get("event_type") in ("redeem_attempt",):
        fields["amount_cents"] = None
    fields["amount_cents"] = rng.choice(
        [MAX_AMOUNT + 1, 2**53 + 1, 2**62, 2**63 - 1, 10**18, 2**63, 2**64]
    )


def _oversized(rng: random.Random, fields: dict[str, Any]) -> None:
    size = rng.choice([66_000, 70_000, 200_000])
    fields[rng.choice(["user_agent", "padding", "event_id"])] = "A" * size


def _long_string(rng: random.Random, fields: dict[str, Any]) -> None:
    size = rng.choice([129, 600, 5_000])
    field = rng.choice(["user_id", "event_id", "ip", "country", "device_id", "email_domain"])
    if field == "user_id" and "giver_user_id" in fields:
        field = "giver_user_id"
    fields[field] = rng.choice(["x", "é", "\u0000", "😀"]) * size


def _raw_pii_in_hash(rng: random.Random, fields: dict[str, Any]) -> None:
    field = "recipient_key_hash" if "recipient_key_hash" in fields else "email_hash"
    fields[field] = rng.choice(
        ["maria.silva@example.com", "+55 11 99999-9999", "529.982.247-25", "maria@x.io"]
    )


def _wrong_type(rng: random.Random, fields: dict[str, Any]) -> None:
    field = rng.choice([k for k in fields if k != "occurred_at"])
    fields[field] = rng.choice([{}, {"$gt": ""}, [1, [2]], [None], {"nested": {"a": 1}}])


def _extra_field(rng: random.Random, fields: dict[str, Any]) -> None:
    fields[rng.choice(["__proto__", "constructor", "amount", "$where", "", "\u0000"])] = 1


def _missing_field(rng: random.Random, fields: dict[str, Any]) -> None:
    required = ["event_id", "occurred_at", "user_id", "giver_user_id", "gift_id", "tx_type"]
    del fields[rng.choice([name for name in required if name in fields])]


def _bad_values(rng: random.Random, fields: dict[str, Any]) -> None:
    choice = rng.randrange(6)
    if choice == 0:
        fields["ip"] = rng.choice(["999.1.1.1", "::::", "1.2.3.4/33", "localhost", "0x7f.1"])
    elif choice == 1:
        fields["lat"] = rng.choice([91, -90.0001, 1e308])
        fields.setdefault("lon", 0)
    elif choice == 2:
        fields["country"] = rng.choice(["brazil", "br", "B", "ÇÃ"])
    elif choice == 3:
        fields["event_id"] = rng.choice(["has space", "tab\there", "a/../b\n", "<script>", ""])
    elif choice == 4:
        if "amount_cents" in fields:
            fields["amount_cents"] = rng.choice([0, -1, -(2**63), 12.5, "100", True])
        else:
            fields["success"] = rng.choice(["yes", 1, 0, None])
    else:
        fields["network_flags"] = rng.choice([["TOR", "NOPE"], "TOR", [None], [["TOR"]]])


def _invalid_text(rng: random.Random, fields: dict[str, Any]) -> bytes:
    text = json.dumps(fields).encode()
    choice = rng.randrange(4)
    if choice == 0:  # invalid UTF-8 inside a string
        return text.replace(b'"event_id": "', b'"event_id": "\xff\xfe', 1)
    if choice == 1:  # a lone surrogate escape
        return text.replace(b'"event_id": "', b'"event_id": "\\ud800', 1)
    if choice == 2:  # the same key twice: the last one would win
        return text[:-1] + b', "event_id": "dup\\u0000"}'
    return text[: rng.randint(1, len(text) - 1)]  # cut anywhere


def _non_object(rng: random.Random, fields: dict[str, Any]) -> bytes:
    return rng.choice(
        [json.dumps([fields]), json.dumps(list(fields)), "null", "true", "1e999", '"{}"', "[]"]
    ).encode()


JSON_MAKERS: dict[str, Maker] = {
    "deep_nesting": _json_maker(_deep, TOO_DEEP, TOO_LARGE),
    "long_number": _json_maker(_long_number, NUMBER),
    "odd_number": _json_maker(_odd_number, NUMBER, VALIDATION),
    "bad_timestamp": _json_maker(_timestamp, VALIDATION),
    "future_timestamp": _json_maker(_future, FUTURE),
    "huge_amount": _json_maker(_huge_amount, AMOUNT, VALIDATION, NUMBER),
    "oversized_record": _json_maker(_oversized, TOO_LARGE),
    "long_string": _json_maker(_long_string, VALIDATION, STRING),
    "raw_pii_in_hash": _json_maker(_raw_pii_in_hash, VALIDATION),
    "wrong_type": _json_maker(_wrong_type, VALIDATION),
    "extra_field": _json_maker(_extra_field, VALIDATION),
    "missing_field": _json_maker(_missing_field, VALIDATION),
    "bad_value": _json_maker(_bad_values, VALIDATION),
    "invalid_text": _json_maker(_invalid_text, MALFORMED, VALIDATION),
    "non_object": _json_maker(_non_object, MALFORMED),
}


def _avro_timestamp(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    """Avro whose timestamp-millis long is outside any date Python can hold, or implausible."""
    chosen = _input(kind, rng)
    event = _event(chosen, rng, user)
    at = rng.choice([2**63 - 1, -(2**63), 10**17, -1, 253_402_300_800_000, _now_ms() // 1000])
    return raw_avro(KIND_MODEL[chosen], _avro_fields(event, occurred_at=at)), _of(
        MALFORMED, VALIDATION
    )


def _avro_amount(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    """Avro with the largest longs as amount (the Avro long itself cannot hold more)."""
    chosen = TRANSACTIONS if kind in (VALIDATED, LOGINS) else kind
    event = _event(chosen, rng, user)
    amount = rng.choice([2**63 - 1, 2**62, MAX_AMOUNT + 1, 10**15])
    value = raw_avro(KIND_MODEL[chosen], _avro_fields(event, amount_cents=amount))
    return value, _of(NOT_ACCEPTED) if kind == LOGINS else _of(AMOUNT)


def _avro_strings(rng: random.Random, kind: str, user: str) -> tuple[bytes, frozenset[str]]:
    """Avro with a long or control-character string in an id field."""
    chosen = _input(kind, rng)
    event = _event(chosen, rng, user)
    text = rng.choice(["\u0000", "é" * 200, "x" * 5_000, "\ud7ff" * 10, "a b"])
    return raw_avro(KIND_MODEL[chosen], _avro_fields(event, event_id=text)), _of(VALIDATION)


AVRO_MAKERS: dict[str, Maker] = {
    "garbage": _garbage,
    "empty": _empty,
    "truncated_avro": _truncated_avro,
    "padded_avro": _padded_avro,
    "corrupt_avro": _corrupt_avro,
    "unknown_schema": _unknown_schema,
    "wrong_schema": _wrong_schema,
    "avro_timestamp": _avro_timestamp,
    "avro_amount": _avro_amount,
    "avro_string": _avro_strings,
}

MAKERS: dict[str, Maker] = {**AVRO_MAKERS, **JSON_MAKERS}
CATEGORIES = tuple(MAKERS)
_RARE = {"oversized_record": 1, "deep_nesting": 2}
"""Categories sent less often than the others' 4 in turn: their records are large."""
_TURNS = [name for name in CATEGORIES for _ in range(_RARE.get(name, 4))]


def hostile_records(count: int, users: list[str], seed: int = 26) -> Iterator[Hostile]:
    """``count`` hostile records, the categories in turn, each to a random topic kind (the
    re-route topic included) under a random key (the subject's, none, or garbage)."""
    rng = random.Random(seed)
    kinds = [TRANSACTIONS, LOGINS, GIFTS, VALIDATED]
    for n in range(count):
        category = _TURNS[n % len(_TURNS)]
        kind = rng.choice(kinds)
        user = rng.choice(users)
        value, refused_as = MAKERS[category](rng, kind, user)
        key = rng.choice([f"user:{user}".encode(), None, rng.randbytes(rng.randint(0, 64))])
        if value is None and key is None:
            key = b"tombstone"  # Kafka needs one of the two
        yield Hostile(category, kind, key, value, refused_as)


def valid_events(count: int, users: list[str], seed: int = 27) -> list[InputEvent]:
    """Ordinary events of ``users``, with edge cases that are valid and must be decided:
    the largest accepted amount, ids of the longest accepted length, the longest user agent,
    times given at the limits of the skew allowed."""
    rng = random.Random(seed)
    events: list[InputEvent] = []
    for n in range(count):
        user = rng.choice(users)
        kind = rng.choice(list(KIND_MODEL))
        event = _event(kind, rng, user)
        changes: dict[str, Any] = {"event_id": f"valid-{seed}-{n}"}
        edge = rng.randrange(8)
        if edge == 0 and not isinstance(event, LoginEvent) and event.amount_cents:
            changes["amount_cents"] = MAX_AMOUNT
        elif edge == 1:
            changes["event_id"] = f"valid-{seed}-{n}-".ljust(128, "z")
        elif edge == 2 and isinstance(event, LoginEvent):
            changes["user_agent"] = "Mozilla/5.0 " + "x" * 500
        elif edge == 3:
            changes["occurred_at"] = datetime.now(UTC) + timedelta(seconds=60)
        events.append(event.model_copy(update=changes))
    return events


def as_value(event: InputEvent, rng: random.Random) -> bytes:
    """A valid event as Avro or as JSON with epoch-millisecond or offset ISO times."""
    if rng.random() < 0.5:
        return CODEC.encode(event)
    fields = _fields(event)
    if rng.random() < 0.5:
        fields["occurred_at"] = int(event.occurred_at.timestamp() * 1000)
    else:
        offset = timezone(timedelta(hours=rng.choice([-3, 0, 5, 14])))
        fields["occurred_at"] = event.occurred_at.astimezone(offset).isoformat()
    return _json(fields)


ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/v1/decide/{kind}", "none"),
    ("GET", "/api/admin/blacklist", "analyst"),
    ("POST", "/api/admin/blacklist", "admin"),
    ("DELETE", "/api/admin/blacklist/{entity_type}/{value}", "admin"),
    ("POST", "/api/admin/blacklist/check", "analyst"),
    ("POST", "/api/admin/blacklist/import", "admin"),
    ("GET", "/api/admin/blacklist/export", "admin"),
    ("GET", "/api/admin/blacklist/audit-logs", "analyst"),
    ("POST", "/api/admin/screening", "analyst"),
    ("GET", "/api/admin/cases", "analyst"),
    ("GET", "/api/admin/cases/{case_id}", "analyst"),
    ("PUT", "/api/admin/cases/{case_id}", "admin"),
    ("POST", "/api/admin/cases/{case_id}/notes", "analyst"),
    ("POST", "/api/admin/cases/{case_id}/close", "admin"),
    ("POST", "/api/admin/subjects/{subject_id}/evidence", "analyst"),
    ("GET", "/api/admin/subjects/{subject_id}/export", "admin"),
    ("POST", "/api/admin/subjects/{subject_id}/erase", "admin"),
]
"""Every endpoint taking a body, a path or a query parameter, with the role it needs."""

_PATH_VALUES = [
    "%00",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "a" * 5_000,
    "%F0%9F%98%80",
    "%ff%fe",
    "%0d%0aSet-Cookie:%20x",
    "..",
    "%20",
    "user:u1",
    "case:user:nobody:1",
    "ip",
    "email",
    "%25",
    "maria%40example.com",
    "-1",
    "9" * 400,
]
_QUERIES = [
    "",
    "?limit=" + "9" * 5_000,
    "?limit=%C2%B2",  # a superscript two: a digit to str.isdigit
    "?limit=-1&offset=99999999999999999999",
    "?kind=%00&entity_type=%ff&status=%3Cscript%3E",
    "?format=ofac-xml",
    "?format=jsonl",
    "?format=csv",
    "?format=" + "x" * 3_000,
    "?assignee=" + "%00" * 50,
    "?limit=1&limit=2",
]
_BODIES: list[Callable[[random.Random], bytes]] = [
    lambda rng: rng.randbytes(rng.randint(0, 500)),
    lambda rng: b"",
    lambda rng: rng.choice([b"null", b"[]", b"1e999", b"true", b'"x"', b"{}"]),
    lambda rng: b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    lambda rng: b'{"limit": ' + b"9" * 10_000 + b', "amount_cents": 1}',
    lambda rng: b'{"lat": NaN, "amount_cents": Infinity, "limit": -Infinity}',
    lambda rng: b'{"text": "\xff\xfe\xfd", "name": "\\ud800"}',
    lambda rng: json.dumps({"text": "x" * rng.choice([4_001, 100_000])}).encode(),
    lambda rng: json.dumps(
        {
            "entity_type": rng.choice(["ip", "email", "document", "wallet", "x", None]),
            "value": rng.choice(["", "\u0000", "a" * 300, "1" * 400, "999.1.1.1", "@", []]),
            "severity": rng.choice(["LOW", "low", "CRITICAL", 3]),
            "reason": rng.choice(["", "r" * 600, "=cmd|' /C calc'!A0", {"$ne": 1}]),
            "expires_at": rng.choice(
                ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", 1e20, "tomorrow"]
            ),
        }
    ).encode(),
    lambda rng: json.dumps(
        {
            "entities": rng.choice(
                [[], [{}] * 1_001, [{"entity_type": "ip", "value": "1.2.3.4"}] * 3, "x"]
            )
        }
    ).encode(),
    lambda rng: json.dumps(
        {"name": rng.choice(["", "\u202e" * 100, "a" * 257, "Ana"]), "limit": 10**30}
    ).encode(),
    lambda rng: json.dumps(
        {
            "status": rng.choice(["closed", "open", 1]),
            "priority": "HIGH",
            "assignee": "x" * rng.choice([1, 200]),
        }
    ).encode(),
    lambda rng: json.dumps({"outcome": rng.choice(["x", None]), "note": ""}).encode(),
    lambda rng: json.dumps(
        {
            "pii": rng.choice(
                [{}, {"Bad-Name": "x"}, {"name": "x" * 600}, {str(n): "v" for n in range(30)}]
            ),
            "reason": "r",
        }
    ).encode(),
    lambda rng: (
        "entity_type,value,severity,reason,source\n"
        + "".join(
            f"{rng.choice(['ip', 'email', '=1+1'])},{'@' * rng.randint(0, 5)},LOW,r,MANUAL\n"
            for _ in range(50)
        )
    ).encode(),
    lambda rng: (
        b'{"entity_type": "ip", "value": '
        + b"[" * 5_000
        + b"]" * 5_000
        + b"}\n"
        + b'{"entity_type": "ip", "value": '
        + b"9" * 6_000
        + b"}\n"
    ),
    lambda rng: (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 '
        b'"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><sdnList>&lol3;</sdnList>'
    ),
    lambda rng: b"<sdnList><sdnEntry><uid>" + b"<a>" * 3_000 + b"</sdnEntry>",
    lambda rng: _json(_fields(factories.transaction()) | {"occurred_at": 10**20}),
    lambda rng: _json(_fields(factories.transaction()) | {"amount_cents": 2**63 - 1}),
    lambda rng: _json(_fields(factories.gift()) | {"occurred_at": "0001-01-01T00:00:00+14:00"}),
]


@dataclass(frozen=True)
class HostileCall:
    method: str
    route: str
    path: str
    role: str
    body: bytes | None
    headers: dict[str, str]


def hostile_calls(count: int, seed: int = 26) -> Iterator[HostileCall]:
    """``count`` calls, every route in turn, with hostile path and query parameters, bodies
    and headers (the right role's key, so that they reach the handlers)."""
    rng = random.Random(seed)
    for n in range(count):
        method, route, role = ROUTES[n % len(ROUTES)]
        path = route
        for name in ("{kind}", "{entity_type}", "{value}", "{case_id}", "{subject_id}"):
            if name in path:
                chosen = rng.choice([*_PATH_VALUES, "transaction", "gift", "ip"])
                path = path.replace(name, chosen)
        path += rng.choice(_QUERIES)
        body = rng.choice(_BODIES)(rng) if method in ("POST", "PUT") else None
        headers = {
            "User-Agent": rng.choice(
                ["curl/8", "maria@example.com 11 98765-4321", "\u00e9" * 300, "x\tz"]
            ),
            "Content-Type": rng.choice(["application/json", "text/csv", "application/xml", "x/y"]),
        }
        yield HostileCall(method, route, path, role, body, headers)
