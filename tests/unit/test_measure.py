"""The nearest-rank percentile the demo and the benchmarks report."""

from __future__ import annotations

import pytest

from atalaia.measure import percentile


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.0, 1), (0.01, 1), (0.07, 7), (0.5, 50), (0.9, 90), (0.95, 95), (0.99, 99), (1.0, 100)],
)
def test_nearest_rank_of_one_to_one_hundred(q: float, expected: int) -> None:
    assert percentile(list(range(100, 0, -1)), q) == expected


def test_small_samples_take_the_rank_at_or_above() -> None:
    assert percentile([10, 20, 30, 40], 0.5) == 20  # rank ceil(2.0) = 2
    assert percentile([10, 20, 30, 40], 0.51) == 30  # rank ceil(2.04) = 3
    assert percentile([7], 0.99) == 7


def test_no_values_give_the_empty_value() -> None:
    assert percentile([], 0.5) == 0
    assert percentile([], 0.5, 0.0) == 0.0
    assert percentile([0.25, 0.5], 0.99, 0.0) == 0.5
