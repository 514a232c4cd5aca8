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
from datetime import date
from itertools import groupby


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
    days: Sequence[Hashable],
    cards: Sequence[Hashable],
    scores: Sequence[float],
    labels: Sequence[bool],
    k: int = 100,
) -> float:
    """Mean over days of the share of truly compromised cards among the ``k`` cards with the
    highest score that day (a card's score: its highest transaction score of the day)."""
    best: dict[Hashable, dict[Hashable, float]] = defaultdict(dict)
    fraud: dict[Hashable, set[Hashable]] = defaultdict(set)
    for day, card, score, label in zip(days, cards, scores, labels, strict=True):
        best[day][card] = max(score, best[day].get(card, float("-inf")))
        if label:
            fraud[day].add(card)
    if not best:
        return float("nan")
    shares = []
    for day, by_card in best.items():
        top = sorted(by_card, key=lambda card: -by_card[card])[:k]
        shares.append(sum(1 for card in top if card in fraud[day]) / k)
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
    at_ms: Sequence[int],
    labelled_ms: Sequence[int],
    frauds: Sequence[bool],
    test_from: date,
    memory_from: date,
) -> list[int]:
    """Which transactions the handbook measures: those from ``test_from`` on, except the ones
    of cards already known to be compromised, i.e. with a fraud since ``memory_from`` whose
    label was known before the transaction (the handbook: its training week onwards)."""
    known: dict[Hashable, int] = {}
    for day, card, labelled, fraud in zip(days, cards, labelled_ms, frauds, strict=True):
        if fraud and day >= memory_from:
            known[card] = min(known.get(card, labelled), labelled)
    return [
        i
        for i, (day, card, at) in enumerate(zip(days, cards, at_ms, strict=True))
        if day >= test_from and not (card in known and known[card] <= at)
    ]
