"""Garbage collection tuning of long-running processes (streams.app)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.app import collect_garbage_seldom


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_what_is_loaded_is_frozen_and_the_young_generation_waits_longer() -> None:
    _, middle, old = gc.get_threshold()
    loaded = [{"cycle": None} for _ in range(100)]
    collect_garbage_seldom(50_000)
    assert gc.get_threshold() == (50_000, middle, old)
    assert gc.get_freeze_count() >= len(loaded)


@pytest.mark.usefixtures("restored_gc")
def test_zero_keeps_pythons_thresholds() -> None:
    before = gc.get_threshold()
    collect_garbage_seldom(0)
    assert gc.get_threshold() == before
