"""Combinations of signals: fraud behaviours that only show when several signals meet (pure).

The seed's factors cap each kind of evidence (geo 10, velocity 20, behaviour 5), which keeps
an account takeover or a card-testing burst below any review threshold however clearly its
signals line up. Each combination here is one reason with its own points, outside those caps,
naming the signals it saw. What they read of the subject's history comes with the features
(``engine.features.detection_features``): the reasons are a function of the event, its
features and the rules only.

>>> from config.rules import load_rules
>>> from tests.factories import transaction
>>> rules = load_rules()
>>> tx = transaction(network_flags=["TOR"])
>>> [(r.code, r.points) for r in detection_reasons(tx, {}, rules)]
[('NETWORK_TOR_EXIT', 40)]
"""

from __future__ import annotations

from config.rules import Detection, RuleSet
from engine.features import (
    JUST_UNDER_COUNT,
    JUST_UNDER_LIMIT,
    JUST_UNDER_SUM,
    KNOWN_COUNTRY,
    KNOWN_DEVICE,
    NEW_PAYEE,
    SMALL_CHARGES,
    SMALL_CHARGES_BEFORE,
    USER_HISTORY,
    scripted_agent,
    window_feature,
)
from engine.money import format_brl
from engine.velocity import Features
from schemas.models import (
    GiftEvent,
    GiftEventType,
    InputEvent,
    LoginEvent,
    NetworkFlag,
    Reason,
    TransactionEvent,
    TransactionType,
)


def detection_reasons(event: InputEvent, features: Features, rules: RuleSet) -> list[Reason]:
    """The combinations that fire for ``event`` (none when the profile has them off)."""
    detection = rules.detection
    if not detection.enabled:
        return []
    if isinstance(event, GiftEvent):  # the gift rules score suspicious networks already
        return _gift_reasons(event, features, rules)
    reasons = _network_reasons(event, features, detection)
    match event:
        case TransactionEvent():
            reasons += _takeover(event, features, rules)
            if event.tx_type is TransactionType.CARD_PAYMENT:  # a PIX is not a charge
                reasons += _card_testing(features, detection)
            reasons += _structuring(features, detection)
        case LoginEvent():
            reasons += _login_reasons(event, features, detection)
    return reasons


def _network_reasons(
    event: TransactionEvent | LoginEvent, features: Features, detection: Detection
) -> list[Reason]:
    rules = detection.anonymised
    flags = set(event.network_flags)
    if NetworkFlag.TOR in flags:
        return [Reason(code="NETWORK_TOR_EXIT", points=rules.tor_points, detail="IP is a TOR exit")]
    masked = sorted(f.value for f in flags & rules.masking_flags)
    if masked and features.get(USER_HISTORY) and features.get(KNOWN_DEVICE) == 0:
        detail = f"IP flagged {'/'.join(masked)} and a device the user never used"
        return [
            Reason(
                code="NETWORK_MASKED_NEW_DEVICE",
                points=rules.masked_unknown_device_points,
                detail=detail,
            )
        ]
    return []


def _takeover(event: TransactionEvent, features: Features, rules: RuleSet) -> list[Reason]:
    takeover = rules.detection.account_takeover
    if not features.get(USER_HISTORY):
        return []  # nothing is "new" for a user with no established history
    window = rules.capypay.amount.average_window
    earlier = features.get(window_feature("tx", "count", window), 1) - 1
    signals = []
    if features.get(KNOWN_DEVICE) == 0:
        signals.append("new device")
    if features.get(KNOWN_COUNTRY) == 0:
        signals.append(f"new country {event.country}")
    if features.get(NEW_PAYEE):
        signals.append("new payee")
    total = features.get(window_feature("tx", "amount_cents", window), event.amount_cents)
    usual = (total - event.amount_cents) / earlier if earlier >= takeover.min_history else 0
    if usual > 0 and event.amount_cents >= takeover.amount_ratio * usual:
        signals.append(
            f"{format_brl(event.amount_cents)} is {event.amount_cents / usual:.1f}x the usual"
        )
    if len(signals) < takeover.min_signals:
        return []
    detail = f"{', '.join(signals)} ({len(signals)} of 4 signals, from {takeover.min_signals})"
    return [Reason(code="ACCOUNT_TAKEOVER", points=takeover.points, detail=detail)]


def _card_testing(features: Features, detection: Detection) -> list[Reason]:
    testing = detection.card_testing
    small = features.get(SMALL_CHARGES, 0)
    merchants = features.get(window_feature("tx", "counterparties", testing.window), 0)
    # Two tiny charges from a user's own phone are two coffees; a burst is three or more.
    stranger = not features.get(USER_HISTORY) or features.get(KNOWN_DEVICE) == 0
    needed = testing.min_small if stranger else testing.min_small + 1
    if small >= needed and merchants >= testing.min_counterparties:
        detail = (
            f"{small} charges of at most {format_brl(testing.small_max_cents)} to {merchants} "
            f"merchants in {testing.window}"
        )
        return [Reason(code="CARD_TESTING", points=testing.points, detail=detail)]
    before = features.get(SMALL_CHARGES_BEFORE, 0)
    after = window_feature("tx", "counterparties", testing.after_window)
    if before >= testing.after_burst and features.get(after, 0) >= testing.after_burst:
        detail = (
            f"after {before} charges of at most {format_brl(testing.small_max_cents)} "
            f"in {testing.after_window}"
        )
        return [Reason(code="CARD_TESTING", points=testing.points, detail=detail)]
    return []


def _structuring(features: Features, detection: Detection) -> list[Reason]:
    rules = detection.structuring
    limit = features.get(JUST_UNDER_LIMIT)
    if limit is None:
        return []
    count, total = features[JUST_UNDER_COUNT], features[JUST_UNDER_SUM]
    if count >= rules.min_count and total >= limit:
        detail = (
            f"{count} transfers just under {format_brl(limit)} in {rules.window} "
            f"add up to {format_brl(total)}"
        )
        return [Reason(code="STRUCTURING", points=rules.points, detail=detail)]
    detail = f"transfer just under the {format_brl(limit)} limit"
    return [Reason(code="AMOUNT_JUST_UNDER_LIMIT", points=rules.single_points, detail=detail)]


def _login_reasons(event: LoginEvent, features: Features, detection: Detection) -> list[Reason]:
    rules = detection.login
    reasons = []
    scripted = scripted_agent(event.user_agent, rules.scripted_agents)
    if scripted is not None:
        detail = f"user agent of a scripted client ({scripted})"
        reasons.append(
            Reason(code="LOGIN_SCRIPTED_CLIENT", points=rules.scripted_points, detail=detail)
        )
    unknown_device = features.get(KNOWN_DEVICE) == 0
    stranger = (
        not features.get(USER_HISTORY)
        or features.get(KNOWN_COUNTRY) == 0
        or bool(set(event.network_flags) & detection.anonymised.masking_flags)
        or scripted is not None
    )
    if not event.success and unknown_device and stranger:
        detail = "failed login from a device this account never used"
        points = rules.unknown_device_failure_points
        reasons.append(Reason(code="LOGIN_FAILED_UNKNOWN_DEVICE", points=points, detail=detail))
    elif event.success and unknown_device and features.get(KNOWN_COUNTRY) == 0:
        detail = f"login from a device and a country ({event.country}) this account never used"
        points = detection.account_takeover.points
        reasons.append(Reason(code="ACCOUNT_TAKEOVER_LOGIN", points=points, detail=detail))
    return reasons


_NEAR_LIMIT_STEPS = frozenset({GiftEventType.GIFT_CREATED, GiftEventType.GIFT_PAID})


def _gift_reasons(event: GiftEvent, features: Features, rules: RuleSet) -> list[Reason]:
    gift = rules.detection.gift
    limit = rules.gift.limits.max_amount_per_gift_cents
    amount = event.amount_cents
    reasons = []
    if (
        event.event_type in _NEAR_LIMIT_STEPS
        and amount is not None
        and gift.near_limit_fraction * limit <= amount <= limit
    ):
        detail = f"gift of {format_brl(amount)}, near the {format_brl(limit)} per-gift limit"
        reasons.append(Reason(code="GIFT_NEAR_LIMIT", points=gift.near_limit_points, detail=detail))
    if event.event_type is GiftEventType.REFUND_REQUESTED:
        window = gift.refund_burst_window
        refunds = features.get(window_feature("refund_requested", "count", window), 0)
        created = features.get(window_feature("gift_created", "count", gift.spree_window), 0)
        if refunds >= gift.refund_burst_count:
            detail = f"{refunds} refund requests in {window}"
            reasons.append(
                Reason(code="GIFT_REFUND_BURST", points=gift.refund_burst_points, detail=detail)
            )
        elif created >= gift.spree_gifts:
            detail = f"refund requested after {created} gifts created in {gift.spree_window}"
            reasons.append(
                Reason(
                    code="GIFT_REFUND_AFTER_SPREE", points=gift.refund_burst_points, detail=detail
                )
            )
    return reasons
