"""Records of one fetch handed out in event-time order across the input topics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from faust.types import TP

from schemas.codec import WireCodec
from schemas.models import GiftEvent, InputEvent, LoginEvent, TransactionEvent
from streams.alignment import (
    avro_occurred_ms,
    cut_in_publishing_order,
    event_time,
    json_occurred_ms,
)
from tests import factories

INPUTS = frozenset({"tx", "logins", "gifts"})


@dataclass
class Record:
    topic: str
    offset: int
    timestamp: int
    value: bytes | None = None


def _fetched(topic: str, partition: int, times: list[int]) -> tuple[TP, list[Record]]:
    return TP(topic, partition), [Record(topic, n, at) for n, at in enumerate(times)]


def test_chunks_are_cut_at_the_earliest_end_and_merged_by_time() -> None:
    tx, tx_records = _fetched("tx", 0, [10, 20, 30, 40])
    gifts, gift_records = _fetched("gifts", 0, [15, 35, 90])
    cut = cut_in_publishing_order({tx: tx_records, gifts: gift_records}, INPUTS)
    assert [(tp.topic, r.timestamp) for tp, r in cut.now] == [
        ("tx", 10),
        ("gifts", 15),
        ("tx", 20),
        ("tx", 30),
        ("gifts", 35),
        ("tx", 40),
    ]
    assert cut.rest_from == {gifts: 2}  # the gift of 90 is read again, after more tx
    assert cut.handed_until == {tx: 40, gifts: 35}


def test_partitions_are_aligned_per_number_and_other_topics_are_left_out() -> None:
    ahead, ahead_records = _fetched("gifts", 1, [500, 600])
    behind, behind_records = _fetched("tx", 0, [1, 2])
    other, other_records = _fetched("lists", 0, [0])
    records = {ahead: ahead_records, behind: behind_records, other: other_records}
    cut = cut_in_publishing_order(records, INPUTS)
    assert set(cut.as_fetched) == {ahead, behind} and not cut.now and not cut.rest_from
    assert cut.handed_until == {}  # a lone topic of its partition number is not even timed


def test_a_partition_stepping_back_in_time_keeps_its_offset_order_and_progress() -> None:
    stepping, stepping_records = _fetched("logins", 0, [50, 10, 60])
    steady, steady_records = _fetched("tx", 0, [20, 55, 70])
    cut = cut_in_publishing_order({stepping: stepping_records, steady: steady_records}, INPUTS)
    handed = [(tp.topic, r.offset) for tp, r in cut.now]
    assert [o for t, o in handed if t == "logins"] == [0, 1, 2]  # the earliest end: all of it
    assert [o for t, o in handed if t == "tx"] == [0, 1] and cut.rest_from == {steady: 2}


def test_a_topic_left_out_of_the_fetch_but_behind_holds_the_others_back() -> None:
    gifts, gift_records = _fetched("gifts", 0, [100, 200, 300])
    cut = cut_in_publishing_order({gifts: gift_records}, INPUTS, behind={0: 150})
    assert [r.timestamp for _, r in cut.now] == [100] and cut.rest_from == {gifts: 1}
    waiting = cut_in_publishing_order({gifts: gift_records}, INPUTS, behind={0: 50})
    assert waiting.now == [] and waiting.rest_from == {gifts: 0}


def test_event_time_is_the_earlier_of_occurred_at_and_the_record_timestamp() -> None:
    codec = WireCodec()
    occurred = datetime(2026, 10, 2, 10, tzinfo=UTC)
    value = codec.encode(factories.transaction(occurred_at=occurred))
    time_of = event_time(codec, {"tx": TransactionEvent})
    published = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    assert time_of(Record("tx", 0, published, value)) == int(occurred.timestamp() * 1000)
    assert time_of(Record("tx", 0, 5, value)) == 5  # stamped ahead of its sending: the send
    assert time_of(Record("tx", 0, published, b"\x00garbage")) == published
    endless_long = b"\x00\x00\x00\x0f\xa1" + b"\xff" * 64
    huge_string = b"\x00\x00\x00\x0f\xa1" + b"\xfe\xff\xff\xff\x0f" + b"x" * 10
    for hostile in (endless_long, huge_string, b"", b'{"occurred_at": [[[]]]}', None):
        assert time_of(Record("tx", 0, published, hostile)) == published


@pytest.mark.parametrize("make", [factories.transaction, factories.login, factories.gift])
def test_occurred_at_is_read_from_the_avro_frame_of_every_input(
    make: Callable[..., InputEvent],
) -> None:
    occurred = datetime(2026, 10, 2, 10, 30, 15, 123_000, tzinfo=UTC)
    value = WireCodec().encode(make(occurred_at=occurred))
    assert avro_occurred_ms(value) == int(occurred.timestamp() * 1000)
    with pytest.raises((IndexError, ValueError)):
        avro_occurred_ms(value[:7])


def test_a_json_input_is_timed_by_its_topic_contract() -> None:
    occurred = datetime(2026, 10, 2, 10, tzinfo=UTC)
    value = factories.gift(occurred_at=occurred).model_dump_json().encode()
    time_of = event_time(WireCodec(), {"gifts": GiftEvent})
    assert time_of(Record("gifts", 0, 2**50, value)) == int(occurred.timestamp() * 1000)


def test_live_traffic_is_handed_out_whole_merged_by_time() -> None:
    tx, tx_records = _fetched("tx", 0, [10, 20, 30])
    gifts, gift_records = _fetched("gifts", 0, [15])
    records = {tx: tx_records, gifts: gift_records}
    live = cut_in_publishing_order(records, INPUTS, behind={0: 5}, backlogged=set())
    assert [r.timestamp for _, r in live.now] == [10, 15, 20, 30] and not live.as_fetched
    assert not live.rest_from and live.handed_until == {tx: 30, gifts: 15}
    lone = cut_in_publishing_order({tx: tx_records}, INPUTS, behind={0: 5}, backlogged=set())
    assert lone.as_fetched == [tx] and not lone.now  # one topic: nothing to merge
    backlog = cut_in_publishing_order(records, INPUTS, backlogged={0})
    assert backlog.rest_from == {tx: 1}  # 20 and 30 after the gift chunk's end


@pytest.mark.parametrize("make", [factories.transaction, factories.login, factories.gift])
@pytest.mark.parametrize("offset_h", [0, -3, 5.5])
def test_a_json_occurred_at_read_quickly_is_the_one_the_contract_decodes(
    make: Callable[..., InputEvent], offset_h: float
) -> None:
    zone = timezone(timedelta(hours=offset_h))
    event = make(occurred_at=datetime(2026, 10, 2, 10, 30, 15, 123_000, tzinfo=zone))
    value = event.model_dump_json().encode()
    contract = type(event)
    decoded = WireCodec().decode(value, (contract,))
    assert json_occurred_ms(value) == int(decoded.occurred_at.timestamp() * 1000)
    time_of = event_time(WireCodec(), {"in": contract})
    assert time_of(Record("in", 0, 2**50, value)) == json_occurred_ms(value)


def test_other_json_forms_of_occurred_at_are_left_to_the_contract() -> None:
    login = factories.login().model_dump(mode="json")
    for form in ("2026-10-02T10:00:00", 1790000000, None):  # no offset, a number, absent
        value = orjson.dumps({**login, "occurred_at": form})
        assert json_occurred_ms(value) is None
    assert json_occurred_ms(b"[1, 2]") is None
    with pytest.raises(orjson.JSONDecodeError):
        json_occurred_ms(b'{"occurred_at": ')
    codec = WireCodec()
    too_big = orjson.dumps({**login, "pad": "x" * codec.bounds.max_record_bytes})
    time_of = event_time(codec, {"logins": LoginEvent})
    assert time_of(Record("logins", 0, 7, too_big)) == 7  # not even parsed: refused downstream
