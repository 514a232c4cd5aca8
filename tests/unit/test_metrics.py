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


def test_a_card_detected_on_one_day_is_left_out_of_the_next_days_list() -> None:
    """Card x tops both days' lists and is compromised both days. The handbook counts it on
    the first day only: on the second its transactions are gone, and y (compromised, second
    best) takes the top. Without that, day 2 would count x again."""
    days = ["2018-07-25", "2018-07-25", "2018-07-26", "2018-07-26", "2018-07-26"]
    cards = ["x", "y", "x", "y", "z"]
    scores = [0.9, 0.2, 0.95, 0.7, 0.1]
    labels = [True, False, True, True, False]
    # day 1: top-1 x (compromised) -> 1.0; day 2 without x: top-1 y (compromised) -> 1.0
    assert card_precision_at_k(days, cards, scores, labels, k=1) == 1.0
    # k=2: day 1 {x, y}: only x compromised that day -> 0.5; day 2 without x: {y, z} -> 0.5.
    # y was in day 1's list but not compromised that day, so it stays in day 2's.
    assert card_precision_at_k(days, cards, scores, labels, k=2) == 0.5
    # Unordered input: the days are taken in date order all the same.
    order = [4, 2, 0, 3, 1]
    assert (
        card_precision_at_k(
            [days[i] for i in order],
            [cards[i] for i in order],
            [scores[i] for i in order],
            [labels[i] for i in order],
            k=1,
        )
        == 1.0
    )


def test_card_precision_without_leaving_out_would_count_a_card_twice() -> None:
    """A card that tops day 1 and is compromised again on day 2 while something else
    legitimate outranks the rest: the second day scores 0, not 1."""
    days = ["d1", "d2", "d2"]
    cards = ["x", "x", "w"]
    scores = [0.9, 0.9, 0.5]
    labels = [True, True, False]
    assert card_precision_at_k(days, cards, scores, labels, k=1) == 0.5


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
    frauds = [True, True, False, False, False]
    measured = handbook_test_indexes(
        d, cards, frauds, test_from=date(2018, 7, 18), memory_from=date(2018, 7, 4), delay_days=7
    )
    # a's fraud on the 10th is known from the 18th (whole days, 7 + 1 later): its transaction
    # on the 20th is left out; "old"'s fraud is from before the memory: its card counts again.
    assert measured == [3, 4]


def test_known_compromised_cards_are_counted_in_whole_days() -> None:
    """A fraud on day D is known on test day D + delay + 1 and not before, whatever its
    hour (the handbook adds day T - delay - 1's frauds on test day T)."""
    d = [date(2018, 7, 10), date(2018, 7, 17), date(2018, 7, 18)]
    cards = ["a", "a", "a"]
    frauds = [True, False, False]
    measured = handbook_test_indexes(
        d, cards, frauds, test_from=date(2018, 7, 17), memory_from=date(2018, 7, 1), delay_days=7
    )
    assert measured == [1]  # measured on the 17th, left out from the 18th
