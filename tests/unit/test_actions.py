"""Automatic actions on the decision: alerts, blocks, captcha, user message, login flag."""

from __future__ import annotations

from datetime import timedelta

from config.rules import load_rules
from schemas.models import DecisionAction, Verdict
from tests import factories
from tests.factories import run_all

START = factories.NOW - timedelta(days=2)
MESSAGE = load_rules().gift.actions.blocked_message


def test_blocked_creation_alerts_blocks_creation_and_shows_the_generic_message() -> None:
    (outcome,) = run_all([factories.gift(amount_cents=150_000, occurred_at=START)])
    assert outcome.actions == [DecisionAction.INTERNAL_ALERT, DecisionAction.BLOCK_GIFT_CREATION]
    assert outcome.user_message == MESSAGE
    assert "limit" not in (outcome.user_message or "")  # never says why


def test_redemption_brute_force_requires_captcha_then_blocks_redemption() -> None:
    attempts = [
        factories.gift(
            gift_id="cap",
            event_type="redeem_attempt",
            amount_cents=None,
            code_correct=False,
            occurred_at=START + timedelta(seconds=n),
        )
        for n in range(6)
    ]
    outcomes = run_all(attempts)
    assert [o.actions for o in outcomes[:2]] == [[], []]
    assert outcomes[2].actions == [DecisionAction.CAPTCHA_REQUIRED]
    assert outcomes[2].assessment.verdict is Verdict.ALLOW and outcomes[2].user_message is None
    assert outcomes[5].actions == [DecisionAction.INTERNAL_ALERT, DecisionAction.BLOCK_REDEMPTION]


def test_redemption_from_a_suspicious_ip_requires_captcha() -> None:
    attempt = factories.gift(
        event_type="redeem_attempt",
        amount_cents=None,
        code_correct=True,
        network_flags=["PROXY"],
        occurred_at=START,
    )
    (outcome,) = run_all([attempt])
    assert outcome.assessment.verdict is Verdict.REVIEW
    assert outcome.actions == [DecisionAction.CAPTCHA_REQUIRED]


def test_login_under_review_flags_the_user() -> None:
    """Without lists a login reaches REVIEW only through a fraud block (blacklist factor)."""
    quiet = factories.login(user_id="lf", occurred_at=START)
    blocked_gift = factories.gift(
        giver_user_id="lf", amount_cents=150_000, occurred_at=START + timedelta(minutes=1)
    )
    login = factories.login(user_id="lf", occurred_at=START + timedelta(minutes=2))
    outcomes = run_all([quiet, blocked_gift, login])
    assert outcomes[0].actions == []
    assert outcomes[2].assessment.verdict is Verdict.REVIEW
    assert outcomes[2].actions == [DecisionAction.FLAG_USER_FOR_REVIEW]
