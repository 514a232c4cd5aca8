"""Scoring: event + window features + rules -> score, band, verdict and the reasons.

The rules themselves are the catalogue's (``engine.catalogue``): one evaluator per reason
code. Here they are added up, capped at 100, banded and turned into a verdict.

No I/O and no clock: the same event, features and rules always give the same assessment,
which is what makes re-delivered events produce identical decisions (idempotent by event_id).

>>> from config.rules import load_rules
>>> from engine.features import record_and_read
>>> from engine.velocity import VelocityState
>>> from schemas.models import GiftEvent
>>> rules = load_rules()
>>> gift = GiftEvent(event_id="e1", occurred_at=1_700_000_000_000, event_type="gift_created",
...                  gift_id="g1", giver_user_id="u1", amount_cents=150_000)
>>> features = record_and_read(VelocityState(), gift, rules)
>>> a = assess(gift, rules, features)
>>> (a.score, a.band.value, a.verdict.value, [r.code for r in a.reasons])
(100, 'CRITICAL', 'BLOCK', ['GIFT_AMOUNT_OVER_LIMIT'])
"""

from __future__ import annotations

from dataclasses import dataclass

from config.rules import Bands, FlowThresholds, RuleSet
from engine.capypay import fraud_block_hits
from engine.catalogue import reasons_for, tighten
from engine.evaluators import Facts
from engine.lists import judge_hits
from engine.model_inputs import ModelScore
from engine.velocity import Features
from schemas.models import (
    EVENT_KIND_OF,
    EventKind,
    InputEvent,
    ListSeverity,
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
    features: Features
    list_severity: ListSeverity | None = None
    """The most severe block-list hit in force (None: none, or allow-listed)."""


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


def assess(
    event: InputEvent,
    rules: RuleSet,
    features: Features,
    model: tuple[ModelScore, str] | None = None,
) -> Assessment:
    """Score the event on the rules plus, when given, the online model's (score, version)."""
    kind = EVENT_KIND_OF[type(event)]
    # Fraud blocks count as block-list matches for transactions and logins; gift actions
    # under a block are refused by their own rules.
    blocks = () if kind is EventKind.GIFT else fraud_block_hits(features, rules.capypay)
    judged = judge_hits(features, rules.lists, blocks)  # once: reasons and severity read it
    facts = Facts(event, features, rules, judged, model)
    reasons = reasons_for(facts)
    score = max(0, min(MAX_SCORE, sum(r.points for r in reasons)))
    band = band_for(score, rules.bands)
    thresholds = {
        EventKind.TRANSACTION: rules.decision.transaction,
        EventKind.LOGIN: rules.decision.login,
        EventKind.GIFT: rules.decision.gift,
    }[kind]
    verdict, notes = tighten(facts, band, verdict_for(score, thresholds))
    return Assessment(
        score=score,
        band=band,
        verdict=verdict,
        reasons=(*reasons, *notes),
        features=dict(features),
        list_severity=judged.severity,
    )
