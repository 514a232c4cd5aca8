"""A batch's states reach the velocity table's real store, on their partitions, and stay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import faust
import pytest

from agents.current import PartitionEvent, as_current
from agents.scoring import write_states_to

TOPIC = "validated"


def velocity_store(datadir: Path, store: Literal["rocksdb://", "memory://"]) -> faust.App:
    """An app that is never started: only its table's store is used, as the agent uses it."""
    app = faust.App("state-store-test", broker="kafka://127.0.0.1:1", store=store, datadir=datadir)
    app.Table("velocity", partitions=4, key_type=bytes, value_type=bytes)
    return app


def read(app: faust.App, key: bytes, partition: int) -> bytes | None:
    with as_current(PartitionEvent(TOPIC, partition)):
        value: bytes | None = app.tables["velocity"].data.get(key)
    return value


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_states_land_on_their_partitions_and_the_last_write_wins(
    tmp_path: Path, store: Literal["rocksdb://", "memory://"]
) -> None:
    app = velocity_store(tmp_path, store)
    write = write_states_to(app.tables["velocity"].data, TOPIC)
    write([(b"user:a", b"1", 0), (b"ip:b", b"2", 3)])
    write([(b"user:a", b"3", 0)])
    assert read(app, b"user:a", 0) == b"3"
    assert read(app, b"ip:b", 3) == b"2"
    if store == "rocksdb://":  # one database per partition: another partition does not have it
        assert read(app, b"ip:b", 0) is None


def test_rocksdb_states_are_still_there_when_the_store_is_opened_again(tmp_path: Path) -> None:
    first = velocity_store(tmp_path, "rocksdb://")
    write_states_to(first.tables["velocity"].data, TOPIC)([(b"user:a", b"kept", 2)])
    asyncio.run(first.tables["velocity"].data.stop())  # as a worker's stop: the files closed
    again = velocity_store(tmp_path, "rocksdb://")
    assert read(again, b"user:a", 2) == b"kept"
