"""Detection metrics, checked against brute-force definitions."""

from __future__ import annotations

import math
import random
from datetime import date

from engine.metrics import (
    auc_roc,
    average_precision,
    card_precision_at_k,
    confusion,
    handbook_test_indexes,
)


def brute_auc(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties() -> None:
    rng = random.Random(5)
    scores = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.9]) for _ in range(300)]
    labels = [rng.random() < 0.2 + s / 2 for s in scores]
    assert math.isclose(auc_roc(scores, labels), brute_auc(scores, labels))
    assert math.isnan(auc_roc([0.1, 0.2], [False, False]))


def test_average_precision_of_a_perfect_and_of_an_inverted_ranking() -> None:
    assert average_precision([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    # frauds ranked 2nd and 3rd: precision 1/2 at the first, 2/3 at the second
    assert math.isclose(
        average_precision([0.9, 0.5, 0.1], [False, True, True]), (1 / 2 + 2 / 3) / 2
    )
    # a tie between a fraud and a legitimate event is one threshold: precision 1/2
    assert average_precision([0.5, 0.5], [True, False]) == 0.5


def test_card_precision_takes_each_cards_best_score_per_day() -> None:
    days = ["d1", "d1", "d1", "d2", "d2"]
    cards = ["a", "a", "b", "a", "c"]
    scores = [0.1, 0.9, 0.5, 0.2, 0.8]
    labels = [False, False, True, False, True]
    # d1: top-1 is card a (0.9), not compromised that day; d2: top-1 is c, compromised
    assert card_precision_at_k(days, cards, scores, labels, k=1) == 0.5
    assert card_precision_at_k(days, cards, scores, labels, k=2) == 0.5  # b on d1, c on d2


def test_confusion_counts_and_rates() -> None:
    c = confusion([True, True, False, False], [True, False, True, False])
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == (
        1,
        1,
        1,
        1,
    )
    assert c.precision == 0.5 and c.recall == 0.5
    assert math.isnan(confusion([False], [False]).precision)


def test_the_handbook_leaves_out_cards_already_known_compromised() -> None:
    d = [
        date(2018, 7, 1),
        date(2018, 7, 10),
        date(2018, 7, 20),
        date(2018, 7, 20),
        date(2018, 7, 21),
    ]
    cards = ["old", "a", "a", "b", "old"]
    day_ms = 86_400_000
    at = [0, 9 * day_ms, 19 * day_ms, 19 * day_ms, 20 * day_ms]
    labelled = [t + 7 * day_ms for t in at]
    frauds = [True, True, False, False, False]
    measured = handbook_test_indexes(
        d, cards, at, labelled, frauds, test_from=date(2018, 7, 18), memory_from=date(2018, 7, 4)
    )
    # a's fraud on the 10th was known on the 17th: its transaction on the 20th is left out;
    # "old"'s fraud is from before the memory: its card counts again.
    assert measured == [3, 4]
