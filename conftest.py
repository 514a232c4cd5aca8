"""Session-wide checks of a checkout: compiled modules (atalaia.compiled) must match their
sources, and their doctests run from the sources (tests/unit/test_doctests.py), as doctest
collection cannot read a compiled module."""

from __future__ import annotations

from pathlib import Path

import pytest

from atalaia.compiled import compiled_sources, stale_message, stale_sources


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = stale_sources()
    if stale:
        pytest.exit(stale_message(stale), returncode=2)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if collection_path in compiled_sources() else None
