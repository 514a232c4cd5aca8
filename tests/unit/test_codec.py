"""Every kind of bad input is refused with a precise, value-free reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from config.rules import load_rules
from engine.admission import admit
from schemas.codec import DecodeError, WireCodec
from schemas.models import GiftEvent, LoginEvent, TransactionEvent
from tests import factories

CODEC = WireCodec()
POLICY = load_rules().validation


def _json(event: object, **changes: object) -> bytes:
    fields = json.loads(event.model_dump_json())  # type: ignore[attr-defined]
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v != "<drop>"}).encode()


def _reject(value: bytes | None, contract: type = TransactionEvent) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        admit(CODEC, value, (contract,), factories.NOW, POLICY)
    return caught.value


@pytest.mark.parametrize(
    ("value", "error_class", "fragment"),
    [
        (b"", "MalformedPayload", "empty record value"),
        (None, "MalformedPayload", "empty record value"),
        (b"\xff\xfe\x00garbage", "MalformedPayload", "neither Confluent-framed Avro"),
        (b"hello world", "MalformedPayload", "first byte 0x68"),
        (b"\x00\x00\x01", "MalformedPayload", "Avro frame too short"),
        (b"\x00\x00\x00\x03\xe7payload", "UnknownSchemaId", "schema id 999 is not registered"),
        (b"{not json", "MalformedPayload", "invalid JSON at byte 1"),
        (b'{"a": 1', "MalformedPayload", "invalid JSON"),
    ],
)
def test_unreadable_bytes_are_rejected_with_reason(
    value: bytes | None, error_class: str, fragment: str
) -> None:
    error = _reject(value)
    assert error.error_class == error_class
    assert fragment in error.message


def test_schema_of_another_topic_is_refused() -> None:
    framed_login = CODEC.encode(factories.login())
    error = _reject(framed_login, TransactionEvent)
    assert error.error_class == "SchemaNotAccepted"
    assert "schema id 1007 (LoginEvent)" in error.message


def test_truncated_and_padded_avro_are_refused() -> None:
    framed = CODEC.encode(factories.transaction())
    assert _reject(framed[:-3]).error_class == "MalformedPayload"
    padded = _reject(framed + b"\x00\x00")
    assert "2 trailing bytes" in padded.message


def test_missing_field_names_the_field() -> None:
    error = _reject(_json(factories.transaction(), user_id="<drop>"))
    assert error.error_class == "ValidationError"
    assert "user_id: Field required" in error.message


@pytest.mark.parametrize("amount", [-500, 0])
def test_non_positive_amounts_are_refused(amount: int) -> None:
    error = _reject(_json(factories.transaction(), amount_cents=amount))
    assert "amount_cents: Input should be greater than 0" in error.message


@pytest.mark.parametrize("amount", [123.45, 100.0, "100"])
def test_money_is_never_a_float_or_string(amount: object) -> None:
    error = _reject(_json(factories.transaction(), amount_cents=amount))
    assert "amount_cents: Input should be a valid integer" in error.message


def test_timestamp_far_in_the_future_is_refused() -> None:
    future = factories.NOW + timedelta(days=2)
    error = _reject(_json(factories.transaction(), occurred_at=future.isoformat()))
    assert error.error_class == "FutureTimestamp"
    assert error.message == "occurred_at is 172800s in the future (refused beyond 86400s)"


def test_a_skewed_clock_within_a_day_is_admitted() -> None:
    """Scored as of its arrival by the scoring agent, not refused."""
    later = factories.NOW + timedelta(hours=23)
    value = _json(factories.transaction(), occurred_at=later.isoformat())
    event = admit(CODEC, value, (TransactionEvent,), factories.NOW, POLICY)
    assert event.occurred_at == later


def test_small_clock_skew_is_tolerated() -> None:
    soon = factories.NOW + timedelta(seconds=POLICY.max_future_skew_seconds - 1)
    event = admit(
        CODEC,
        _json(factories.transaction(), occurred_at=soon.isoformat()),
        (TransactionEvent,),
        factories.NOW,
        POLICY,
    )
    assert event.occurred_at == soon


TIMESTAMP_RULE = "timestamp must be integer epoch milliseconds or ISO-8601 text with a UTC offset"
EVENT_RANGE = "timestamp must lie from 2000-01-01 to 2100-01-01 (UTC)"


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-22T10:00:00",  # no offset
        "2026-11-22",
        1_763_812_800_000.0,  # a float, even a whole one: no guessed unit
        1_763_812_800.5,
        "1763812800000",  # digits as text
        "22/11/2026 10:00",
        True,
        None,
        [1_763_812_800_000],
    ],
)
def test_timestamps_are_integer_millis_or_iso_with_offset_only(stamp: object) -> None:
    error = _reject(_json(factories.transaction(), occurred_at=stamp))
    assert error.error_class == "ValidationError"
    assert error.message == f"TransactionEvent: occurred_at: Value error, {TIMESTAMP_RULE}"


@pytest.mark.parametrize(
    "stamp",
    [
        1_763_812_800,  # seconds: January 1970 read as milliseconds
        -1,
        10**20,
        2**63,
        253_402_300_800_000,  # year 10000
        "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
        "1999-12-31T23:59:59+00:00",
    ],
)
def test_timestamps_outside_the_plausible_range_are_refused(stamp: object) -> None:
    error = _reject(_json(factories.transaction(), occurred_at=stamp))
    assert error.error_class == "ValidationError"
    assert f"occurred_at: Value error, {EVENT_RANGE}" in error.message


def test_raw_pii_in_a_hash_field_is_refused_and_not_echoed() -> None:
    error = _reject(
        _json(factories.transaction(), email_hash="maria@example.com", phone_hash="ab12")
    )
    assert "email_hash: String should match pattern" in error.message
    assert "maria" not in error.message
    assert error.raw_pii_fields == ("email_hash",)  # named for the metric, not shown


def test_amounts_above_the_flows_maximum_are_refused_without_the_value() -> None:
    limit = POLICY.max_amount_cents.transaction
    admit(
        CODEC,
        _json(factories.transaction(), amount_cents=limit),
        (TransactionEvent,),
        factories.NOW,
        POLICY,
    )
    for amount in (limit + 1, 2**63 - 1):
        error = _reject(_json(factories.transaction(), amount_cents=amount))
        assert error.error_class == "AmountAboveLimit"
        assert (
            error.message == "amount_cents is above the transaction maximum of R$ 10.000.000.000,00"
        )
    gift = _reject(
        _json(factories.gift(), amount_cents=POLICY.max_amount_cents.gift + 1), GiftEvent
    )
    assert gift.error_class == "AmountAboveLimit"


@pytest.mark.parametrize(
    ("text", "error_class"),
    [
        ('{"amount_cents": ' + "9" * 5_000 + "}", "NumberOutOfRange"),
        ('{"lat": ' + "1" * 30 + ".5}", "NumberOutOfRange"),
        ('{"lat": NaN}', "NumberOutOfRange"),
        ('{"lat": -Infinity}', "NumberOutOfRange"),
        ('{"lat": 1e400}', "NumberOutOfRange"),
        ('{"x": ' + "[" * 5_000 + "]" * 5_000 + "}", "NestingTooDeep"),
        ('{"x": [[[[[1]]]]]}', "NestingTooDeep"),
        ('{"x": "' + "a" * 5_000 + '"}', "StringTooLong"),
        ('{"event_id": "\\ud800"}', "MalformedPayload"),
        ('{"x": "' + "a" * 70_000 + '"}', "RecordTooLarge"),
    ],
)
def test_json_beyond_the_input_bounds_is_refused_with_its_class(
    text: str, error_class: str
) -> None:
    error = _reject(text.encode())
    assert error.error_class == error_class
    assert "9999" not in error.message and "aaaa" not in error.message


def test_avro_beyond_the_record_size_is_refused_before_it_is_read() -> None:
    framed = CODEC.encode(factories.transaction())
    assert _reject(framed + b"\x00" * 70_000).error_class == "RecordTooLarge"


def test_bad_ip_country_and_coordinates_are_refused() -> None:
    error = _reject(_json(factories.transaction(), ip="999.1.1.1", country="brazil", lat=91))
    assert "ip: Value error, not a valid IPv4 or IPv6 address" in error.message
    assert "country: String should match pattern" in error.message
    assert "lat: Input should be less than or equal to 90" in error.message
    assert "999.1.1.1" not in error.message


def test_unknown_fields_are_refused() -> None:
    error = _reject(_json(factories.transaction(), amount=10))
    assert "amount: Extra inputs are not permitted" in error.message


def test_gift_steps_require_their_fields() -> None:
    no_amount = _reject(_json(factories.gift(), amount_cents="<drop>"), GiftEvent)
    assert "amount_cents is required for gift_created" in no_amount.message
    attempt = factories.gift(event_type="redeem_attempt", amount_cents=None, code_correct=False)
    no_code = _reject(_json(attempt, code_correct=None), GiftEvent)
    assert "code_correct is required for redeem_attempt" in no_code.message


def test_json_array_is_not_an_event() -> None:
    error = _reject(b"[1, 2]")
    assert error.error_class == "MalformedPayload"
    assert "nor a JSON object" in error.message


def test_ip_is_canonicalised() -> None:
    event = admit(
        CODEC, _json(factories.login(), ip="2001:DB8:0:0::1"), (LoginEvent,), factories.NOW, POLICY
    )
    assert event.ip == "2001:db8::1"
