"""Small measurement helpers shared by the demo and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (0 for no values).

    >>> percentile([5, 1, 3, 2, 4], 0.5), percentile([], 0.99)
    (3, 0)
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0
