"""Combinations of signals: fraud behaviours that only show when several signals meet (pure).

The seed's factors cap each kind of evidence (geo 10, velocity 20, behaviour 5), which keeps
an account takeover or a card-testing burst below any review threshold however clearly its
signals line up. Each combination here is one rule (``engine.evaluators.Rule``) with its own
points, outside those caps, naming the signals it saw. What they read of the subject's
history comes with the features (``engine.features.detection_features``): the reasons are a
function of the event, its features and the rules only. The ``seed`` profile has them off.

>>> from config.rules import load_rules
>>> from tests.factories import transaction
>>> rules = load_rules()
>>> tx = transaction(network_flags=["TOR"])
>>> [(r.code, r.points) for r in detection_reasons(tx, {}, rules)]
[('NETWORK_TOR_EXIT', 40)]
"""

from __future__ import annotations

from config.rules import RuleSet
from engine.evaluators import (
    Facts,
    Fired,
    Rule,
    Section,
    gift_of,
    login_of,
    reasons_of,
    transaction_of,
)
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
from engine.giftpix import rapid_series
from engine.lists import NO_HITS
from engine.money import format_brl
from engine.velocity import Features
from schemas.models import (
    EventKind,
    GiftEvent,
    GiftEventType,
    InputEvent,
    LoginEvent,
    NetworkFlag,
    Reason,
    TransactionEvent,
    TransactionType,
)

_TX = frozenset({EventKind.TRANSACTION})
_LOGIN = frozenset({EventKind.LOGIN})
_GIFT = frozenset({EventKind.GIFT})
_TX_AND_LOGIN = frozenset({EventKind.TRANSACTION, EventKind.LOGIN})
_CP_GEO = 'CP "Análise Geográfica" tor_vpn, proxy_detected'
_ATO = "CP inconsistent_behavior + new_country + unusual_for_user, combined (combination ours)"


# Anonymised networks (transactions and logins).


def _tor_exit(facts: Facts) -> Fired | None:
    if NetworkFlag.TOR in facts.flags:
        return facts.detection.anonymised.tor_points, "IP is a TOR exit"
    return None


def _masked_new_device(facts: Facts) -> Fired | None:
    rules, flags, features = facts.detection.anonymised, facts.flags, facts.features
    if NetworkFlag.TOR in flags:
        return None  # a TOR exit is scored alone
    masked = sorted(f.value for f in flags & rules.masking_flags)
    if masked and features.get(USER_HISTORY) and features.get(KNOWN_DEVICE) == 0:
        detail = f"IP flagged {'/'.join(masked)} and a device the user never used"
        return rules.masked_unknown_device_points, detail
    return None


TOR_EXIT = Rule(
    "NETWORK_TOR_EXIT",
    _tor_exit,
    _TX_AND_LOGIN,
    (),
    "detection.anonymised.tor_points",
    "the IP is a TOR exit (flagged upstream or by the imported exit-node list)",
    _CP_GEO,
)
MASKED_NEW_DEVICE = Rule(
    "NETWORK_MASKED_NEW_DEVICE",
    _masked_new_device,
    _TX_AND_LOGIN,
    (USER_HISTORY, KNOWN_DEVICE),
    "detection.anonymised.masked_unknown_device_points",
    "not TOR; an IP flagged with one of masking_flags (VPN, proxy, hosting) and a device "
    "the user with history never used",
    _CP_GEO,
)


# Transactions.


def _takeover(facts: Facts) -> Fired | None:
    features, event, rules = facts.features, transaction_of(facts), facts.rules
    takeover = rules.detection.account_takeover
    if not features.get(USER_HISTORY):
        return None  # nothing is "new" for a user with no established history
    window = rules.capypay.amount.average_window
    earlier = features.get(window_feature("tx", "count", window), 1) - 1
    signals = []
    if features.get(KNOWN_DEVICE) == 0:
        signals.append("new device")
    elif takeover.new_device_required:
        return None
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
        return None
    detail = f"{', '.join(signals)} ({len(signals)} of 4 signals, from {takeover.min_signals})"
    return takeover.points, detail


def _card_testing(facts: Facts) -> Fired | None:
    if transaction_of(facts).tx_type is not TransactionType.CARD_PAYMENT:
        return None  # a PIX is not a charge
    testing, features = facts.detection.card_testing, facts.features
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
        return testing.points, detail
    before = features.get(SMALL_CHARGES_BEFORE, 0)
    after = window_feature("tx", "counterparties", testing.after_window)
    if before >= testing.after_burst and features.get(after, 0) >= testing.after_burst:
        detail = (
            f"after {before} charges of at most {format_brl(testing.small_max_cents)} "
            f"in {testing.after_window}"
        )
        return testing.points, detail
    return None


def _series_under_limit(facts: Facts) -> tuple[int, int, int] | None:
    """The limit the transfer is just under, and the window's count and sum of such."""
    limit = facts.features.get(JUST_UNDER_LIMIT)
    if limit is None:
        return None
    return limit, facts.features[JUST_UNDER_COUNT], facts.features[JUST_UNDER_SUM]


def _structured(facts: Facts, series: tuple[int, int, int]) -> bool:
    limit, count, total = series
    return count >= facts.detection.structuring.min_count and total >= limit


def _structuring(facts: Facts) -> Fired | None:
    series = _series_under_limit(facts)
    if series is None or not _structured(facts, series):
        return None
    limit, count, total = series
    rules = facts.detection.structuring
    detail = (
        f"{count} transfers just under {format_brl(limit)} in {rules.window} "
        f"add up to {format_brl(total)}"
    )
    return rules.points, detail


def _just_under(facts: Facts) -> Fired | None:
    series = _series_under_limit(facts)
    if series is None or _structured(facts, series):
        return None
    detail = f"transfer just under the {format_brl(series[0])} limit"
    return facts.detection.structuring.single_points, detail


_STRUCTURING_SEED = 'CP "Análise de Valor" structuring, just_below_limits (limits and series ours)'
TRANSACTION_RULES = (
    TOR_EXIT,
    MASKED_NEW_DEVICE,
    Rule(
        "ACCOUNT_TAKEOVER",
        _takeover,
        _TX,
        ("user.*", "tx.new_payee", "tx.count.*", "tx.amount_cents.*"),
        "detection.account_takeover.points",
        "a user with established history showing min_signals of: new device (required when "
        "new_device_required), new country, new payee, amount_ratio x the usual amount (after "
        "min_history transactions)",
        _ATO,
    ),
    Rule(
        "CARD_TESTING",
        _card_testing,
        _TX,
        ("tx.small_charges*", "tx.counterparties.*", "user.*"),
        "detection.card_testing.points",
        "a card payment: min_small charges of at most small_max_cents (one more from the "
        "user's own known device) to min_counterparties merchants in window, or any charge "
        "within after_window of after_burst of them",
        "CP velocity (card testing: combination ours)",
    ),
    Rule(
        "STRUCTURING",
        _structuring,
        _TX,
        ("structuring.*",),
        "detection.structuring.points",
        "min_count transfers in window, each from below_fraction of a limit up to it, "
        "adding up to the limit",
        _STRUCTURING_SEED,
    ),
    Rule(
        "AMOUNT_JUST_UNDER_LIMIT",
        _just_under,
        _TX,
        ("structuring.*",),
        "detection.structuring.single_points",
        "a transfer from below_fraction of a limit up to it, not (yet) a structuring series",
        _STRUCTURING_SEED,
    ),
)


# Logins.


def _scripted(facts: Facts) -> Fired | None:
    rules = facts.detection.login
    scripted = scripted_agent(login_of(facts).user_agent, rules.scripted_agents)
    if scripted is None:
        return None
    return rules.scripted_points, f"user agent of a scripted client ({scripted})"


def _failed_unknown_device(facts: Facts) -> Fired | None:
    detection, features, event = facts.detection, facts.features, login_of(facts)
    if event.success or features.get(KNOWN_DEVICE) != 0:
        return None
    stranger = (
        not features.get(USER_HISTORY)
        or features.get(KNOWN_COUNTRY) == 0
        or bool(set(event.network_flags) & detection.anonymised.masking_flags)
        or scripted_agent(event.user_agent, detection.login.scripted_agents) is not None
    )
    if not stranger:
        return None
    detail = "failed login from a device this account never used"
    return detection.login.unknown_device_failure_points, detail


def _takeover_login(facts: Facts) -> Fired | None:
    features, event = facts.features, login_of(facts)
    if not event.success or features.get(KNOWN_DEVICE) != 0 or features.get(KNOWN_COUNTRY) != 0:
        return None
    detail = f"login from a device and a country ({event.country}) this account never used"
    return facts.detection.account_takeover.points, detail


_CP_LOGIN = 'CP "login_frequency", inconsistent_behavior (combination ours)'
LOGIN_RULES = (
    TOR_EXIT,
    MASKED_NEW_DEVICE,
    Rule(
        "LOGIN_SCRIPTED_CLIENT",
        _scripted,
        _LOGIN,
        (),
        "detection.login.scripted_points",
        "the user agent contains one of scripted_agents (HTTP libraries, headless browsers)",
        _CP_LOGIN,
    ),
    Rule(
        "LOGIN_FAILED_UNKNOWN_DEVICE",
        _failed_unknown_device,
        _LOGIN,
        (KNOWN_DEVICE, USER_HISTORY, KNOWN_COUNTRY),
        "detection.login.unknown_device_failure_points",
        "a failed login from a device the account never used, on an account with no "
        "established history, or from a new country, a masked network or a scripted client",
        _CP_LOGIN,
    ),
    Rule(
        "ACCOUNT_TAKEOVER_LOGIN",
        _takeover_login,
        _LOGIN,
        (KNOWN_DEVICE, KNOWN_COUNTRY),
        "detection.account_takeover.points",
        "a successful login from a device and a country the account never used",
        _ATO,
    ),
)


# GiftPix.

_NEAR_LIMIT_STEPS = frozenset({GiftEventType.GIFT_CREATED, GiftEventType.GIFT_PAID})


def _near_limit(facts: Facts) -> Fired | None:
    event, rules = gift_of(facts), facts.rules
    gift, limit = rules.detection.gift, rules.gift.limits.max_amount_per_gift_cents
    amount = event.amount_cents
    if event.event_type not in _NEAR_LIMIT_STEPS or amount is None:
        return None
    if not gift.near_limit_fraction * limit <= amount <= limit:
        return None
    detail = f"gift of {format_brl(amount)}, near the {format_brl(limit)} per-gift limit"
    return gift.near_limit_points, detail


_DAY_STEP_METRIC = {
    GiftEventType.GIFT_CREATED: "gift_created",
    GiftEventType.GIFT_PAID: "gift_paid",
}


def _near_daily_limit(facts: Facts) -> Fired | None:
    """Several gifts of a day adding up near the giver's daily amount limit: mass creation
    kept under the limits, a gift at a time."""
    event, rules = gift_of(facts), facts.rules
    metric = _DAY_STEP_METRIC.get(event.event_type)
    if metric is None:
        return None
    gift, limits = rules.detection.gift, rules.gift.limits
    count = facts.features.get(window_feature(metric, "count", limits.day_window), 0)
    total = facts.features.get(window_feature(metric, "amount_cents", limits.day_window), 0)
    if count < gift.near_daily_min_gifts or total < gift.near_daily_fraction * (
        limits.max_amount_per_day_cents
    ):
        return None
    detail = (
        f"{count} gifts of {format_brl(total)} in {limits.day_window}, near the "
        f"{format_brl(limits.max_amount_per_day_cents)} daily limit"
    )
    return gift.near_daily_points, detail


def _paid_in_rapid_creation(facts: Facts) -> Fired | None:
    """The payment of a gift created in a rapid series: the series' creations are flagged
    by the seed's rule, their payments are the money moving."""
    if gift_of(facts).event_type is not GiftEventType.GIFT_PAID:
        return None
    recent = rapid_series(facts)
    if recent is None:
        return None
    window = facts.gift.patterns.rapid_creation_window
    detail = f"paid in a series of {recent} gifts created in {window}"
    return facts.gift.points.rapid_creation, detail


def _refunds_in_burst(facts: Facts) -> int | None:
    """The giver's refund requests in the burst window, for a refund request."""
    if gift_of(facts).event_type is not GiftEventType.REFUND_REQUESTED:
        return None
    window = facts.detection.gift.refund_burst_window
    return facts.features.get(window_feature("refund_requested", "count", window), 0)


def _refund_burst(facts: Facts) -> Fired | None:
    gift, refunds = facts.detection.gift, _refunds_in_burst(facts)
    if refunds is None or refunds < gift.refund_burst_count:
        return None
    return gift.refund_burst_points, f"{refunds} refund requests in {gift.refund_burst_window}"


def _refund_after_spree(facts: Facts) -> Fired | None:
    gift, refunds = facts.detection.gift, _refunds_in_burst(facts)
    if refunds is None or refunds >= gift.refund_burst_count:
        return None  # not a refund request, or a burst already
    created = facts.features.get(window_feature("gift_created", "count", gift.spree_window), 0)
    if created < gift.spree_gifts:
        return None
    detail = f"refund requested after {created} gifts created in {gift.spree_window}"
    return gift.refund_burst_points, detail


_GP_REFUNDS = 'GP 5.3 "Bloqueio de estornos em massa" (window and counts ours)'
GIFT_RULES = (
    Rule(
        "GIFT_NEAR_LIMIT",
        _near_limit,
        _GIFT,
        (),
        "detection.gift.near_limit_points",
        "a gift created or paid from near_limit_fraction of the per-gift limit up to it",
        'GP 5.1 "Valor máximo por gift" (mass creation at the limits, ours)',
    ),
    Rule(
        "GIFT_NEAR_DAILY_LIMIT",
        _near_daily_limit,
        _GIFT,
        ("gift_created.count.*", "gift_created.amount_cents.*", "gift_paid.*"),
        "detection.gift.near_daily_points",
        "a gift created or paid when the giver's gifts of day_window (this one included) are "
        "near_daily_min_gifts or more and add up to near_daily_fraction of the daily limit",
        'GP 5.1 "Valor máximo por dia" (mass creation under the limits, ours)',
    ),
    Rule(
        "GIFT_PAID_IN_RAPID_CREATION",
        _paid_in_rapid_creation,
        _GIFT,
        ("gift_created.count.*",),
        "gift.points.rapid_creation",
        "a gift paid while the giver's creations in rapid_creation_window reach "
        "rapid_creation_count",
        'GP 6 "Criação rápida de vários gifts" (its payments, ours)',
    ),
    Rule(
        "GIFT_REFUND_BURST",
        _refund_burst,
        _GIFT,
        ("refund_requested.count.*",),
        "detection.gift.refund_burst_points",
        "refund_burst_count refund requests by the giver in refund_burst_window",
        _GP_REFUNDS,
    ),
    Rule(
        "GIFT_REFUND_AFTER_SPREE",
        _refund_after_spree,
        _GIFT,
        ("refund_requested.count.*", "gift_created.count.*"),
        "detection.gift.refund_burst_points",
        "not a burst; a refund request by a giver who created spree_gifts gifts in spree_window",
        _GP_REFUNDS,
    ),
)


def _enabled(facts: Facts) -> bool:
    return facts.detection.enabled


TRANSACTION_SECTION = Section(TRANSACTION_RULES, active=_enabled)
LOGIN_SECTION = Section(LOGIN_RULES, active=_enabled)
GIFT_SECTION = Section(GIFT_RULES, active=_enabled)


def detection_reasons(event: InputEvent, features: Features, rules: RuleSet) -> list[Reason]:
    """The combinations that fire for ``event`` (none when the profile has them off)."""
    facts = Facts(event, features, rules, NO_HITS)
    match event:
        case GiftEvent():
            return reasons_of((GIFT_SECTION,), facts)
        case TransactionEvent():
            return reasons_of((TRANSACTION_SECTION,), facts)
        case LoginEvent():
            return reasons_of((LOGIN_SECTION,), facts)
