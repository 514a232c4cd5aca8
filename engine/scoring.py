"""Scoring: event + rules -> score, band, verdict and the reasons behind them.

No I/O and no clock: the same event and rules always give the same assessment, which is
what makes re-delivered events produce identical decisions (idempotent by event_id).

>>> from config.rules import load_rules
>>> from schemas.models import GiftEvent
>>> rules = load_rules()
>>> gift = GiftEvent(event_id="e1", occurred_at=0, event_type="gift_created",
...                  gift_id="g1", giver_user_id="u1", amount_cents=150_000)
>>> a = assess(gift, rules)
>>> (a.score, a.band.value, a.verdict.value, [r.code for r in a.reasons])
(100, 'CRITICAL', 'BLOCK', ['GIFT_AMOUNT_OVER_LIMIT'])
"""

from __future__ import annotations

from dataclasses import dataclass

from config.rules import Bands, FlowThresholds, GiftRules, RuleSet
from schemas.models import (
    EVENT_KIND_OF,
    EventKind,
    GiftEvent,
    GiftEventType,
    InputEvent,
    Reason,
    RiskBand,
    Verdict,
)

MAX_SCORE = 100


@dataclass(frozen=True)
class Assessment:
    score: int
    band: RiskBand
    verdict: Verdict
    reasons: tuple[Reason, ...]


def format_brl(cents: int) -> str:
    """Brazilian display of centavos: 123456 -> 'R$ 1.234,56'.

    >>> format_brl(100_000)
    'R$ 1.000,00'
    """
    reais, centavos = divmod(cents, 100)
    return f"R$ {reais:,}".replace(",", ".") + f",{centavos:02d}"


def band_for(score: int, bands: Bands) -> RiskBand:
    if score < bands.low_below:
        return RiskBand.LOW
    if score < bands.medium_below:
        return RiskBand.MEDIUM
    if score < bands.high_below:
        return RiskBand.HIGH
    return RiskBand.CRITICAL


def verdict_for(score: int, thresholds: FlowThresholds) -> Verdict:
    if score > thresholds.block_above:
        return Verdict.BLOCK
    if score >= thresholds.review_from:
        return Verdict.REVIEW
    return Verdict.ALLOW


def gift_reasons(event: GiftEvent, rules: GiftRules) -> list[Reason]:
    """GiftPix MVP rules that need no history (per-gift limit, failed PIX)."""
    reasons = []
    limit = rules.limits.max_amount_per_gift_cents
    if (
        event.event_type is GiftEventType.GIFT_CREATED
        and event.amount_cents is not None
        and event.amount_cents > limit
    ):
        reasons.append(
            Reason(
                code="GIFT_AMOUNT_OVER_LIMIT",
                points=rules.points.amount_over_gift_limit,
                detail=f"gift of {format_brl(event.amount_cents)} exceeds the "
                f"{format_brl(limit)} per-gift limit",
            )
        )
    if event.event_type is GiftEventType.PAYMENT_FAILED:
        reasons.append(
            Reason(
                code="GIFT_PIX_FAILED",
                points=rules.points.payment_failed,
                detail="PIX payment for the gift failed",
            )
        )
    return reasons


def assess(event: InputEvent, rules: RuleSet) -> Assessment:
    kind = EVENT_KIND_OF[type(event)]
    reasons = gift_reasons(event, rules.gift) if isinstance(event, GiftEvent) else []
    score = min(MAX_SCORE, sum(r.points for r in reasons))
    thresholds = {
        EventKind.TRANSACTION: rules.decision.transaction,
        EventKind.LOGIN: rules.decision.login,
        EventKind.GIFT: rules.decision.gift,
    }[kind]
    return Assessment(
        score=score,
        band=band_for(score, rules.bands),
        verdict=verdict_for(score, thresholds),
        reasons=tuple(reasons),
    )
