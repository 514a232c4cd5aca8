"""Scoring: event + window features + rules -> score, band, verdict and the reasons.

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

from config.rules import ActionVelocity, Bands, FlowThresholds, GiftRules, RuleSet
from engine.accounts import FROZEN_FEATURE, frozen_reason
from engine.admission import CLOCK_SKEW_FEATURE, subject_of
from engine.capypay import fraud_block_hits, login_reasons, transaction_reasons
from engine.detection import detection_reasons
from engine.features import (
    BLOCKED_FEATURE,
    ENTITY_BLOCKED_FEATURE,
    REFUND_IN_POLICY_FEATURE,
    REFUND_OF_REDEEMED_FEATURE,
    type_metric,
    window_feature,
)
from engine.learning import flow_rules
from engine.lists import ListVerdict, judge_hits
from engine.model_inputs import ModelScore, model_reasons
from engine.money import format_brl
from engine.velocity import Features
from schemas.models import (
    EVENT_KIND_OF,
    EventKind,
    GiftEvent,
    GiftEventType,
    InputEvent,
    ListSeverity,
    LoginEvent,
    Reason,
    RiskBand,
    TransactionEvent,
    Verdict,
)

MAX_SCORE = 100
_SEVERITIES = list(ListSeverity)
# What a fraud block stops: creating gifts and automatic refunds (giver blocked), redeeming
# them (gift blocked).
_BLOCKED_STEPS = frozenset(
    {
        GiftEventType.GIFT_CREATED,
        GiftEventType.REFUND_REQUESTED,
        GiftEventType.REDEEM_ATTEMPT,
        GiftEventType.GIFT_REDEEMED,
    }
)


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


def gift_reasons(
    event: GiftEvent, rules: GiftRules, features: Features, judged: ListVerdict
) -> list[Reason]:
    """GiftPix MVP rules: per-gift and per-day limits, failed payments, redemption attempts,
    rapid creation and suspicious IPs, plus list hits on the giver, redeemer, recipient key or
    IP. ``features`` are the subject's window values."""
    limits, patterns, points = rules.limits, rules.patterns, rules.points
    day = limits.day_window
    reasons: list[Reason] = list(judged.reasons)

    def fire(code: str, earned: int, detail: str) -> None:
        reasons.append(Reason(code=code, points=earned, detail=detail))

    kind = event.event_type
    if features.get(BLOCKED_FEATURE) and kind in _BLOCKED_STEPS:
        fire(
            "GIFT_SUBJECT_BLOCKED",
            points.subject_blocked,
            f"{subject_of(event).key} is under an active fraud block",
        )
    if features.get(ENTITY_BLOCKED_FEATURE) and kind in _BLOCKED_STEPS:
        fire(
            "GIFT_ENTITY_BLOCKED",
            points.entity_blocked,
            "an entity of this action (IP, device, recipient...) is under an active fraud block",
        )
    if kind is GiftEventType.GIFT_CREATED and event.amount_cents is not None:
        if event.amount_cents > limits.max_amount_per_gift_cents:
            fire(
                "GIFT_AMOUNT_OVER_LIMIT",
                points.amount_over_gift_limit,
                f"gift of {format_brl(event.amount_cents)} exceeds the "
                f"{format_brl(limits.max_amount_per_gift_cents)} per-gift limit",
            )
        created = features[window_feature("gift_created", "count", day)]
        if created > limits.max_gifts_per_day:
            fire(
                "GIFT_DAILY_COUNT_EXCEEDED",
                points.daily_count_exceeded,
                f"{created} gifts created in {day}, limit {limits.max_gifts_per_day}",
            )
        total = features[window_feature("gift_created", "amount_cents", day)]
        if total > limits.max_amount_per_day_cents:
            fire(
                "GIFT_DAILY_AMOUNT_EXCEEDED",
                points.daily_amount_exceeded,
                f"{format_brl(total)} in gifts in {day}, limit "
                f"{format_brl(limits.max_amount_per_day_cents)}",
            )
        failures = features[window_feature("payment_failed", "count", day)]
        if failures >= limits.max_failed_payments_per_day:
            fire(
                "GIFT_FAILED_PAYMENTS_LIMIT",
                points.failed_payments_exceeded,
                f"{failures} failed gift payments in {day}, limit "
                f"{limits.max_failed_payments_per_day}",
            )
        recent = features[window_feature("gift_created", "count", patterns.rapid_creation_window)]
        if recent >= patterns.rapid_creation_count:
            fire(
                "GIFT_RAPID_CREATION",
                points.rapid_creation,
                f"{recent} gifts created in {patterns.rapid_creation_window}",
            )
    if kind is GiftEventType.REFUND_REQUESTED and features.get(REFUND_OF_REDEEMED_FEATURE):
        fire(
            "GIFT_REFUND_AFTER_REDEMPTION",
            points.refund_after_redemption,
            "the gift was already redeemed: no automatic refund",
        )
    if kind is GiftEventType.REFUND_REQUESTED and not features.get(REFUND_IN_POLICY_FEATURE):
        fire(
            "GIFT_REFUND_OUTSIDE_POLICY",
            points.refund_outside_policy,
            f"no creation of this gift by its giver in the last {limits.refund_window}: "
            "refund through support",
        )
    if kind is GiftEventType.REFUND_REQUESTED:
        refunds = features[window_feature("refund_requested", "count", day)]
        if refunds > limits.max_refunds_per_day:
            fire(
                "GIFT_MASS_REFUND",
                points.mass_refund,
                f"{refunds} refund requests in {day}, limit {limits.max_refunds_per_day}",
            )
    if kind is GiftEventType.PAYMENT_FAILED:
        fire("GIFT_PIX_FAILED", points.payment_failed, "PIX payment for the gift failed")
    if kind is GiftEventType.REDEEM_ATTEMPT:
        window = patterns.code_attempts_window
        wrong = features[window_feature("redeem_failed", "count", window)]
        attempts = wrong + features[window_feature("redeem_ok", "count", window)]
        if attempts > limits.max_code_attempts:
            fire(
                "GIFT_CODE_ATTEMPTS_EXCEEDED",
                points.code_attempts_exceeded,
                f"{attempts} redemption attempts on this gift, limit {limits.max_code_attempts}",
            )
        elif wrong >= patterns.suspicious_code_attempts:
            fire(
                "GIFT_CODE_ATTEMPTS",
                points.code_attempts,
                f"{wrong} wrong codes entered for this gift",
            )
    suspicious = patterns.suspicious_network_flags.intersection(event.network_flags)
    if suspicious:
        fire(
            "GIFT_SUSPICIOUS_IP",
            points.suspicious_ip,
            f"actor IP flagged upstream as {', '.join(sorted(f.value for f in suspicious))}",
        )
    return reasons


def _action_options(
    event: TransactionEvent, band: RiskBand, verdict: Verdict, rules: RuleSet, features: Features
) -> tuple[Verdict, list[Reason]]:
    """The seed middleware's per-action options (e.g. crypto swaps): they can only tighten."""
    options = rules.capypay.actions.get(event.tx_type)
    if options is None:
        return verdict, []
    notes = []
    if options.block_on_medium_risk and band is not RiskBand.LOW and verdict is not Verdict.BLOCK:
        verdict = Verdict.BLOCK
        notes.append(
            Reason(
                code="ACTION_BLOCK_ON_MEDIUM_RISK",
                points=0,
                detail=f"{event.tx_type.value} is blocked from {band.value} risk",
            )
        )
    limit = options.velocity
    excess = None
    if limit is not None and verdict is not Verdict.BLOCK:
        excess = _velocity_excess(event, limit, features)
    if excess is not None:
        verdict = Verdict.BLOCK
        notes.append(Reason(code="ACTION_VELOCITY_LIMIT", points=0, detail=excess))
    threshold = options.high_value_review_cents
    if threshold is not None and event.amount_cents >= threshold and verdict is Verdict.ALLOW:
        verdict = Verdict.REVIEW
        notes.append(
            Reason(
                code="ACTION_HIGH_VALUE_REVIEW",
                points=0,
                detail=f"{event.tx_type.value} of {format_brl(event.amount_cents)} "
                f"needs review from {format_brl(threshold)}",
            )
        )
    return verdict, notes


def _velocity_excess(
    event: TransactionEvent, limit: ActionVelocity, features: Features
) -> str | None:
    """What exceeds the type's velocity limit (None: nothing, or its features are absent: a
    re-delivery first decided before the limit was configured, or a challenger's window)."""
    metric, window = type_metric(event.tx_type), limit.hour_window
    count = features.get(window_feature(metric, "count", window))
    volume = features.get(window_feature(metric, "amount_cents", window))
    if count is None or volume is None:
        return None
    excess = []
    kind = event.tx_type.value
    if count > limit.transactions_per_hour:
        excess.append(f"{count} {kind} in {window} (limit {limit.transactions_per_hour})")
    if volume > limit.volume_per_hour_cents:
        excess.append(
            f"{format_brl(volume)} of {kind} in {window} "
            f"(limit {format_brl(limit.volume_per_hour_cents)})"
        )
    return "; ".join(excess) if excess else None


def _manual_review(event: TransactionEvent, verdict: Verdict, rules: RuleSet) -> list[Reason]:
    """The seed's ``requireManualReview``: a REVIEW of this type does not "continue with
    flag" but waits for an analyst (on the final verdict: not on what ends up blocked)."""
    options = rules.capypay.actions.get(event.tx_type)
    if verdict is not Verdict.REVIEW or options is None or not options.require_manual_review:
        return []
    detail = (
        f"{event.tx_type.value} under review: hold the transaction until an analyst decides "
        "(do not continue with the flag)"
    )
    return [Reason(code="ACTION_MANUAL_REVIEW_REQUIRED", points=0, detail=detail)]


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
    match event:
        case GiftEvent():
            reasons = gift_reasons(event, rules.gift, features, judged)
        case TransactionEvent():
            reasons = transaction_reasons(event, features, rules.capypay, judged)
        case LoginEvent():
            reasons = login_reasons(event, features, rules.capypay, judged)
    reasons = [*reasons, *detection_reasons(event, features, rules)]
    if model is not None:
        model_rules = rules.model if kind is EventKind.TRANSACTION else flow_rules(rules.model)
        reasons = [*reasons, *model_reasons(*model, model_rules)]
    skew_s = features.get(CLOCK_SKEW_FEATURE)
    if skew_s:
        detail = f"occurred_at was {int(skew_s)}s ahead of its arrival: scored as of its arrival"
        reasons = [*reasons, Reason(code="EVENT_CLOCK_SKEW", points=0, detail=detail)]
    score = max(0, min(MAX_SCORE, sum(r.points for r in reasons)))
    thresholds = {
        EventKind.TRANSACTION: rules.decision.transaction,
        EventKind.LOGIN: rules.decision.login,
        EventKind.GIFT: rules.decision.gift,
    }[kind]
    band = band_for(score, rules.bands)
    verdict = verdict_for(score, thresholds)
    if isinstance(event, TransactionEvent):
        verdict, notes = _action_options(event, band, verdict, rules, features)
        reasons = [*reasons, *notes]
    severity = judged.severity
    block_from = rules.lists.block_from.get(kind)
    if (
        severity is not None
        and block_from is not None
        and _SEVERITIES.index(severity) >= _SEVERITIES.index(block_from)
        and verdict is not Verdict.BLOCK
    ):
        verdict = Verdict.BLOCK
        detail = (
            f"a {severity.value} block-list hit blocks a {kind.value} (from {block_from.value})"
        )
        reasons = [*reasons, Reason(code="LIST_SEVERITY_BLOCK", points=0, detail=detail)]
    if features.get(FROZEN_FEATURE):
        verdict = Verdict.BLOCK
        reasons = [*reasons, frozen_reason()]
    if isinstance(event, TransactionEvent):
        reasons = [*reasons, *_manual_review(event, verdict, rules)]
    return Assessment(
        score=score,
        band=band,
        verdict=verdict,
        reasons=tuple(reasons),
        features=dict(features),
        list_severity=severity,
    )
