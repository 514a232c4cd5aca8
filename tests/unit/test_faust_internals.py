"""The faust-streaming and aiokafka internals the engine relies on, pinned.

Each entry is a function or method of Faust or aiokafka that our code calls, overrides, or
whose behaviour it depends on, with a fingerprint of its source as released in the pinned
versions. After an upgrade a changed fingerprint fails here, naming what to read again: the
reason each one is needed, and how to check it still holds, is in
docs/adr/0001-faust-internals.md. Once checked (and our code adapted), put the new
fingerprint here. The behaviour itself is proven by the integration tests the ADR names.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from contextvars import ContextVar
from importlib.metadata import version

import faust.streams
import pytest

from agents.current import PartitionEvent, as_current

PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

FINGERPRINTS = {
    "faust.streams:current_event": "3b821f1a78d86a58",
    "faust.streams:Stream.take_events": "607d48aead118ba8",
    "faust.stores.rocksdb:Store._set": "4227e561e288d941",
    "faust.stores.rocksdb:Store._get": "7ae8dfd6d7754a59",
    "faust.stores.rocksdb:Store._db_for_partition": "cb7e67d5f9efc4bc",
    "faust.stores.rocksdb:Store.set_persisted_offset": "b4c811926678346e",
    "faust.stores.rocksdb:Store.apply_changelog_batch": "ea3344d369fc4ab5",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": (
        "c2701bfc3e6f6cad"
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._highwaters": "a7f4f97d9f32aca2",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.seek_to_committed": (
        "775ab0adc4b052ab"
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.on_thread_stop": "8dfc004e258b6c25",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:Producer.flush": "36d0cb3615f65b01",
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "aiokafka.consumer.fetcher:Fetcher.seek_to": "f0ba6aba6c22ef83",
    "faust.transport.consumer:Consumer.stop_flow": "cf7e875a2b0d40e8",
    "faust.app.base:App._new_transport": "42db531312dd776f",
    "faust.transport.consumer:Consumer.on_stop": "45b1d2210ce2b526",
    "faust.transport.consumer:Consumer.wait_empty": "e4662fe24f094819",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "2f1ba70443327538",
    "aiokafka.consumer.fetcher:Fetcher.close": "1cd24bc1c442149e",
}


def _resolve(name: str) -> object:
    module, _, qualified = name.partition(":")
    found: object = importlib.import_module(module)
    for part in qualified.split("."):
        found = getattr(found, part)
    return found


def test_the_pinned_versions_are_the_ones_installed() -> None:
    assert {name: version(name) for name in PINNED} == PINNED


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_an_internal_we_rely_on_is_unchanged(name: str) -> None:
    source = inspect.getsource(_resolve(name))  # type: ignore[arg-type]
    found = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert found == FINGERPRINTS[name], (
        f"{name} changed: re-check it as docs/adr/0001-faust-internals.md says, then pin {found}"
    )


def test_the_current_event_is_a_context_variable_we_can_point_at_a_partition() -> None:
    """Faust's tables and RocksDB store pick a key's partition from the current event's
    ``message.partition``, read through this context variable."""
    variable = faust.streams._current_event
    assert isinstance(variable, ContextVar)
    before = faust.streams.current_event()
    stand_in = PartitionEvent("topic", 2)
    with as_current(stand_in):
        event = faust.streams.current_event()
        assert event is stand_in
        assert (event.message.topic, event.message.partition) == ("topic", 2)
    assert faust.streams.current_event() is before
