"""Detection-quality metrics as the fraud-detection handbook computes them (pure).

>>> auc_roc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
0.75
>>> round(average_precision([0.1, 0.4, 0.35, 0.8], [False, False, True, True]), 3)
0.833
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from typing import TypeVar

Day = TypeVar("Day", date, str)


def auc_roc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance a random fraud outranks a random legitimate
    event, ties counting half (Mann-Whitney)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: p[0])
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum, position = 0.0, 0
    for _, group in groupby(ranked, key=lambda p: p[0]):
        tied = list(group)
        mean_rank = position + (len(tied) + 1) / 2
        rank_sum += mean_rank * sum(1 for _, label in tied if label)
        position += len(tied)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Sum over score thresholds of precision times the recall gained (scikit-learn's
    definition; events with equal scores are one threshold)."""
    positives = sum(labels)
    if not positives:
        return float("nan")
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    total, seen, hits = 0.0, 0, 0
    for _, group in groupby(ranked, key=lambda p: p[0]):
        tied = list(group)
        seen += len(tied)
        gained = sum(1 for _, label in tied if label)
        hits += gained
        total += (hits / seen) * (gained / positives)
    return total


def card_precision_at_k(
    days: Sequence[Day],
    cards: Sequence[Hashable],
    scores: Sequence[float],
    labels: Sequence[bool],
    k: int = 100,
) -> float:
    """Mean over days of the share of truly compromised cards among the ``k`` cards with the
    highest score that day, as the handbook's ``card_precision_top_k`` computes it: a card's
    score is its highest transaction score of the day, and a compromised card found in an
    earlier day's top ``k`` is left out of the days after (an investigator already has it).
    Days are taken in sorted order; cards with equal scores keep their first appearance.

    >>> card_precision_at_k(["d1", "d1", "d2", "d2"], ["a", "b", "a", "b"],
    ...                     [0.9, 0.1, 0.9, 0.8], [True, False, True, True], k=1)
    1.0
    """
    by_day: dict[Day, list[int]] = defaultdict(list)
    for i, day in enumerate(days):
        by_day[day].append(i)
    if not by_day:
        return float("nan")
    detected: set[Hashable] = set()
    shares = []
    for day in sorted(by_day):
        best: dict[Hashable, float] = {}
        compromised: set[Hashable] = set()
        for i in by_day[day]:
            card = cards[i]
            if card in detected:
                continue
            best[card] = max(scores[i], best.get(card, float("-inf")))
            if labels[i]:
                compromised.add(card)
        top = sorted(best, key=lambda card: -best[card])[:k]
        found = [card for card in top if card in compromised]
        shares.append(len(found) / k)
        detected.update(found)
    return sum(shares) / len(shares)


@dataclass(frozen=True)
class Confusion:
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else float("nan")

    @property
    def recall(self) -> float:
        frauds = self.true_positives + self.false_negatives
        return self.true_positives / frauds if frauds else float("nan")


def confusion(flagged: Sequence[bool], labels: Sequence[bool]) -> Confusion:
    pairs = list(zip(flagged, labels, strict=True))
    return Confusion(
        true_positives=sum(1 for f, y in pairs if f and y),
        false_positives=sum(1 for f, y in pairs if f and not y),
        false_negatives=sum(1 for f, y in pairs if not f and y),
        true_negatives=sum(1 for f, y in pairs if not f and not y),
    )


def handbook_test_indexes(
    days: Sequence[date],
    cards: Sequence[Hashable],
    frauds: Sequence[bool],
    test_from: date,
    memory_from: date,
    delay_days: int,
) -> list[int]:
    """Which transactions the handbook measures: those from ``test_from`` on, except the ones
    of cards already known to be compromised. As the handbook's ``get_train_test_set`` counts
    it, in whole days: on test day T a card is known when it had a fraud on a day from
    ``memory_from`` (its training week) to T - ``delay_days`` - 1."""
    fraud_days: dict[Hashable, list[date]] = defaultdict(list)
    for day, card, fraud in zip(days, cards, frauds, strict=True):
        if fraud and day >= memory_from:
            fraud_days[card].append(day)
    first_known = {
        card: min(found) + timedelta(days=delay_days + 1) for card, found in fraud_days.items()
    }
    return [
        i
        for i, (day, card) in enumerate(zip(days, cards, strict=True))
        if day >= test_from and not (card in first_known and first_known[card] <= day)
    ]
