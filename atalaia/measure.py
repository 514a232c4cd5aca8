"""Small measurement helpers shared by the demo and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

N = TypeVar("N", int, float)


def percentile(values: Sequence[N], q: float, empty: N = 0) -> N:
    """Nearest-rank percentile: the smallest value with at least ``q`` of all values at or
    below it (rank ``ceil(q * n)``); ``empty`` for no values.

    >>> percentile(range(1, 101), 0.99), percentile(range(1, 101), 0.5)
    (99, 50)
    >>> percentile([5, 1, 3, 2, 4], 0.5), percentile([], 0.99)
    (3, 0)
    """
    ordered = sorted(values)
    if not ordered:
        return empty
    # q * n is rounded first: 0.07 * 100 is 7.000000000000001, whose ceiling is one rank too far.
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[min(len(ordered), max(rank, 1)) - 1]
