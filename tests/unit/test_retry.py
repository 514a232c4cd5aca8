"""A failed batch write is retried until stored; unexpected errors still surface."""

from __future__ import annotations

import asyncio

import pytest

from agents import retry
from agents.retry import until_stored


def test_retries_listed_errors_until_the_write_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "MAX_BACKOFF_S", 0.01)
    attempts = []

    async def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("down")
        return len(attempts)

    assert asyncio.run(until_stored(flaky, (ConnectionError,), "writing")) == 4
    assert len(attempts) == 4


def test_other_errors_are_not_swallowed() -> None:
    async def broken() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        asyncio.run(until_stored(broken, (ConnectionError,), "writing"))
