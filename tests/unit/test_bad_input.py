"""Scoring with what is known: unknown users, missing optional fields, disorder, duplicates."""

from __future__ import annotations

from datetime import timedelta

from schemas.models import GiftEvent, LoginEvent, TransactionEvent, Verdict
from tests import factories
from tests.factories import decide, decide_all

BARE_TRANSACTION = TransactionEvent(
    event_id="bare-tx",
    occurred_at=factories.NOW,
    tx_type="PIX_TRANSFER",
    user_id="never-seen",
    amount_cents=5_000,
)
BARE_LOGIN = LoginEvent(
    event_id="bare-login",
    occurred_at=factories.NOW,
    user_id="never-seen",
    success=True,
    method="OTP",
)
BARE_GIFT = GiftEvent(
    event_id="bare-gift",
    occurred_at=factories.NOW,
    event_type="redeem_attempt",
    gift_id="g",
    giver_user_id="u",
    code_correct=False,
)


def test_unknown_subjects_with_only_required_fields_are_scored() -> None:
    for event in (BARE_TRANSACTION, BARE_LOGIN, BARE_GIFT):
        assessment = decide(event)
        assert assessment.verdict is Verdict.ALLOW
        assert 0 <= assessment.score <= 100


def test_no_geo_no_device_means_no_geo_or_device_reasons() -> None:
    history = [
        BARE_TRANSACTION.model_copy(
            update={"event_id": f"h{n}", "occurred_at": factories.NOW - timedelta(days=n + 1)}
        )
        for n in range(4)
    ]
    last = decide_all([*history, BARE_TRANSACTION])[-1]
    codes = {r.code for r in last.reasons}
    assert not codes & {"GEO_NEW_COUNTRY", "BEHAVIOR_NEW_DEVICE", "GEO_HIGH_RISK_COUNTRY"}
    assert last.features["tx.new_country"] == 0 and last.features["tx.new_device"] == 0


def test_out_of_order_events_count_only_what_came_before_them_in_time() -> None:
    late = BARE_TRANSACTION.model_copy(
        update={"event_id": "late", "occurred_at": factories.NOW - timedelta(minutes=30)}
    )
    newer = BARE_TRANSACTION.model_copy(update={"event_id": "newer"})
    first, second = decide_all([newer, late])
    assert first.features["tx.count.1h"] == 1
    # The late event's window ends at its own time: the newer one is not in it.
    assert second.features["tx.count.5m"] == 1
    assert second.features["tx.count.1h"] == 1


def test_duplicates_do_not_count_twice_and_decide_the_same() -> None:
    events = [
        BARE_TRANSACTION.model_copy(
            update={"event_id": f"d{n}", "occurred_at": factories.NOW + timedelta(seconds=n)}
        )
        for n in range(3)
    ]
    results = decide_all([*events, events[0], events[2], events[2]])
    assert results[2].features["tx.count.5m"] == 3
    assert results[3] == results[0] and results[4] == results[2] and results[5] == results[2]


def test_events_stamped_slightly_in_the_future_are_scored() -> None:
    ahead = BARE_TRANSACTION.model_copy(
        update={"event_id": "ahead", "occurred_at": factories.NOW + timedelta(minutes=4)}
    )
    assert decide(ahead).features["tx.count.5m"] == 1
