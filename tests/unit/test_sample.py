"""The demo's generated sample: what the engine would refuse must not be in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atalaia.sample import synthetic_transactions_until


def test_synthetic_transactions_end_at_the_given_time_and_none_is_in_the_future() -> None:
    end = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    events = synthetic_transactions_until(100, end)
    assert len(events) == 100
    assert max(e.occurred_at for e in events) <= end
    assert max(e.occurred_at for e in events) > end - timedelta(minutes=1)
    assert len({e.event_id for e in events}) == 100
