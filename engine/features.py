"""What each event records in its subject's velocity state, and which features it reads.

Feature names are ``<metric>.<stat>.<window>``, e.g. ``gift_created.count.24h``; they are
published with each decision so an analyst sees the values a verdict came from.

>>> from tests.factories import gift
>>> observe(gift(event_type="redeem_attempt", amount_cents=None, code_correct=False)).metric
'redeem_failed'
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from config.rules import CapyPay, Detection, RuleSet
from engine.admission import CLOCK_SKEW_FEATURE, Subject, subject_of
from engine.geo import distance_km
from engine.velocity import Features, Observation, VelocityState, WindowStats, saturated
from schemas.models import (
    GiftEvent,
    GiftEventType,
    InputEvent,
    LoginEvent,
    SubjectType,
    TransactionEvent,
    TransactionType,
)

# Related metrics a gift decision reports besides its own, by subject: a gift creation is
# judged on the giver's failed payments too, a redemption on the gift's earlier attempts.
_GIVER_METRICS = ("gift_created", "payment_failed")
REDEEM_FAILED, REDEEM_OK = "redeem_failed", "redeem_ok"
"""The metrics of a redemption attempt with a wrong code and with the right one."""
_GIFT_METRICS = (REDEEM_FAILED, REDEEM_OK)
_LOGIN_METRICS = ("login_failed", "login_ok")
_STATS = WindowStats._fields
BLOCKED_FEATURE = "subject.blocked"
"""1 when a fraud block on the subject was in force at the event's time."""
ENTITY_BLOCKED_FEATURE = "entity.blocked"
"""1 when a fraud block on the event's IP or device was known to be in force at its time."""


def metric_of(event: InputEvent) -> str:
    match event:
        case TransactionEvent():
            return "tx"
        case LoginEvent():
            return "login_ok" if event.success else "login_failed"
        case GiftEvent() if event.event_type is GiftEventType.REDEEM_ATTEMPT:
            return REDEEM_OK if event.code_correct else REDEEM_FAILED
        case GiftEvent():
            return event.event_type.value
    raise TypeError(f"not an input event: {type(event).__name__}")


def local_time(occurred_at: datetime, utc_offset_hours: int) -> datetime:
    """The event's wall-clock time where the rules place their users (hours, weekdays)."""
    return occurred_at + _hours(utc_offset_hours)


@cache
def _hours(count: int) -> timedelta:
    return timedelta(hours=count)


def at_ms_of(event: InputEvent) -> int:
    return int(event.occurred_at.timestamp() * 1000)


def observe(event: InputEvent, counterparty: str | None = None) -> Observation:
    """What the event adds to a state's windows; ``counterparty`` in place of the event's
    own (an entity's windows count the subject that used it)."""
    at_ms = at_ms_of(event)
    match event:
        case TransactionEvent():
            if counterparty is None:
                counterparty = (
                    event.counterparty_pix_key_hash
                    or event.counterparty_wallet
                    or event.counterparty_bank_account
                    or event.terminal_id
                    or event.merchant_id
                )
            return Observation(
                event.event_id,
                at_ms,
                metric_of(event),
                event.amount_cents,
                counterparty,
                event.country,
                event.device_id,
                event.lat,
                event.lon,
            )
        case LoginEvent():
            return Observation(
                event.event_id,
                at_ms,
                metric_of(event),
                0,
                counterparty,
                event.country,
                event.device_fingerprint,
                event.lat,
                event.lon,
            )
        case GiftEvent():
            return Observation(
                event.event_id,
                at_ms,
                metric_of(event),
                event.amount_cents or 0,
                event.recipient_key_hash if counterparty is None else counterparty,
                event.country,
                event.device_id,
            )
    raise TypeError(f"not an input event: {type(event).__name__}")


def velocity_features(state: VelocityState, event: InputEvent, windows: dict[str, int]) -> Features:
    """Window statistics of the subject at the event's time, for every configured window.

    All statistics of the event's own metric; counts of the related metrics its rules read.
    """
    at_ms = at_ms_of(event)
    own = metric_of(event)
    related: tuple[str, ...] = ()
    if isinstance(event, GiftEvent):
        related = _GIFT_METRICS if subject_of(event).type is SubjectType.GIFT else _GIVER_METRICS
    elif isinstance(event, LoginEvent):
        related = _LOGIN_METRICS
    features: Features = {}
    lengths = list(windows.values())
    for metric in dict.fromkeys((own, *related)):
        for name, stats in zip(windows, state.windows(metric, at_ms, lengths), strict=True):
            if metric == own:
                for stat, value in zip(_STATS, stats, strict=True):
                    features[window_feature(metric, stat, name)] = value
            else:
                features[window_feature(metric, "count", name)] = stats.count
    return features


@cache
def window_feature(metric: str, stat: str, window: str) -> str:
    """A window statistic's feature name, ``<metric>.<stat>.<window>``: the one place it is
    spelled (formatted once per name, as every event reads several)."""
    return f"{metric}.{stat}.{window}"


def history_features(state: VelocityState, event: InputEvent, horizon_s: int) -> Features:
    """What the subject's history says about this event, read *before* it is recorded:
    seconds since the previous event of the same metric (-1: none), and whether its country
    and device are new (1) for a subject with history. Transactions and logins only."""
    if isinstance(event, GiftEvent):
        return {}
    obs = observe(event)
    metric = obs.metric
    previous = state.previous_second(metric, obs.at_ms)
    has_history = previous is not None
    features = {
        f"{metric}.seconds_since_previous": -1 if previous is None else obs.at_ms // 1000 - previous
    }
    for name, kind, value in (
        ("country", "countries", obs.country),
        ("device", "devices", obs.device),
    ):
        is_new = (
            has_history
            and value is not None
            and not state.has_value(metric, kind, value, obs.at_ms, horizon_s)
        )
        features[f"{metric}.new_{name}"] = int(is_new)
    features.update(travel_features(state, obs))
    return features


REDEEMED_METRIC = "redeemed_gift"
"""In a giver's state: the gifts of theirs that were redeemed (gift id as counterparty)."""
REFUND_OF_REDEEMED_FEATURE = "refund.gift_redeemed"
"""1 when a refund is requested for a gift its giver's state knows was redeemed."""


CREATED_GIFT_METRIC = "created_gift"
"""In a giver's state: the gifts they created (gift id as counterparty), for the refund policy."""
REFUND_IN_POLICY_FEATURE = "refund.gift_in_policy"
"""1 when a refund is requested for a gift its giver created within the refund window."""


def giver_key_of_redemption(event: InputEvent) -> str | None:
    """For a ``gift_redeemed`` event (decided with the gift), the giver's state key, which
    learns of the redemption so that a later refund of that gift can be refused."""
    if isinstance(event, GiftEvent) and event.event_type is GiftEventType.GIFT_REDEEMED:
        return Subject(SubjectType.USER, event.giver_user_id).key
    return None


def record_redemption(state: VelocityState, event: GiftEvent, horizon_s: int) -> bool:
    """Remember in the giver's state that ``event``'s gift was redeemed (False: known)."""
    at_ms = at_ms_of(event)
    fact = Observation(event.event_id, at_ms, REDEEMED_METRIC, counterparty=event.gift_id)
    return state.record(fact, horizon_s)


def pattern_features(
    state: VelocityState, obs: Observation, model: CapyPay, windows: dict[str, int]
) -> Features:
    """The user's amount and hour patterns around a transaction, read before it is recorded.

    ``tx.same_amount``: transactions of exactly this amount in the pattern window, this one
    included. ``tx.structuring.count`` / ``.amount_cents``: transactions each below the
    single-transaction alert and at least the configured fraction of it, this one included
    when it qualifies. ``tx.hour_history``: earlier transactions in the usual-hours window;
    ``tx.near_hour``: how many of them were within the tolerance of this one's clock hour.
    """
    amount, alert = obs.amount_cents, model.amount.single_transaction_alert_cents
    pattern_s = windows[model.amount.pattern_window]
    earlier = state.amounts(obs.metric, obs.at_ms, pattern_s)
    floor = alert * model.amount.structuring_min_fraction
    split = [a for a in [*earlier, amount] if floor <= a < alert] if floor <= amount < alert else []
    behavioral = model.behavioral
    seconds = state.seconds(obs.metric, obs.at_ms, windows[behavioral.usual_hours_window])
    hour = obs.at_ms // 3_600_000 % 24
    near = sum(
        1
        for second in seconds
        if min(abs(second // 3600 % 24 - hour), 24 - abs(second // 3600 % 24 - hour))
        <= behavioral.usual_hours_tolerance
    )
    return {
        "tx.same_amount": 1 + earlier.count(amount),
        "tx.structuring.count": len(split),
        "tx.structuring.amount_cents": saturated(sum(split)),
        "tx.hour_history": len(seconds),
        "tx.near_hour": near,
    }


def travel_features(state: VelocityState, obs: Observation) -> Features:
    """Distance and speed from the subject's last known place (-1 when unknown)."""
    last = state.last_place
    if last is None or obs.lat is None or obs.lon is None or obs.at_ms <= last[0]:
        return {"travel.km": -1, "travel.kmh": -1}
    km = distance_km(last[1], last[2], obs.lat, obs.lon)
    hours = (obs.at_ms - last[0]) / 3_600_000
    return {"travel.km": round(km), "travel.kmh": round(km / hours)}


def type_metric(tx_type: TransactionType) -> str:
    """The metric counting a user's transactions of one type, ``tx_crypto_swap``: recorded
    beside ``tx`` only for the types whose action options set a velocity limit. Lowercase with
    underscores like every metric (no dot: feature names are ``<metric>.<stat>.<window>``)."""
    return f"tx_{tx_type.value.lower()}"


def action_velocity_features(
    state: VelocityState, event: TransactionEvent, rules: RuleSet, counted: bool
) -> Features:
    """The count and amount of the user's transactions of the event's type in the window of
    its action options' velocity limit, this one included (``tx_crypto_swap.count.1h``,
    ``tx_crypto_swap.amount_cents.1h``); none for types without one. ``counted``: the event
    was just recorded in ``state``, so it is recorded under the type's metric too, with an id
    of its own (a re-delivery, not counted again, is not recorded again either)."""
    options = rules.capypay.actions.get(event.tx_type)
    if options is None or options.velocity is None:
        return {}
    metric = type_metric(event.tx_type)
    at_ms = at_ms_of(event)
    if counted:
        typed = Observation(f"{event.event_id}#{metric}", at_ms, metric, event.amount_cents)
        state.record(typed, rules.velocity.horizon_s)
    window = options.velocity.hour_window
    stats = state.window(metric, at_ms, rules.velocity.windows[window])
    return {
        window_feature(metric, "count", window): stats.count,
        window_feature(metric, "amount_cents", window): stats.amount_cents,
    }


KNOWN_DEVICE = "user.device_known"
"""1: the device took part in the user's transactions or successful logins of the
established history (within the horizon, at least ``established_after`` before the event);
0: never; absent when the event names no device."""
USER_HISTORY = "user.history"
"""1: the user has transactions or successful logins in the established history."""
KNOWN_COUNTRY = "user.country_known"
"""The same for the event's country; absent for a user with no such history."""
NEW_PAYEE = "tx.new_payee"
"""1: a user with an established history pays a counterparty it never paid there."""
SMALL_CHARGES = "tx.small_charges"
"""The user's small charges in the card-testing window, this one included when small."""
SMALL_CHARGES_BEFORE = "tx.small_charges_before"
"""The user's earlier small charges in the window a burst's larger charge follows in."""
JUST_UNDER_LIMIT = "structuring.limit_cents"
JUST_UNDER_COUNT = "structuring.count"
JUST_UNDER_SUM = "structuring.amount_cents"
"""The highest limit this transfer is just under, and the user's transfers just under it in
the window (this one included) with their sum."""


def scripted_agent(user_agent: str | None, agents: Iterable[str]) -> str | None:
    """The first of ``agents`` (lower-case substrings of HTTP libraries' and headless
    browsers' user agents) that ``user_agent`` holds: the event came from a script."""
    agent = (user_agent or "").lower()
    return next((a for a in agents if a in agent), None) if agent else None


_TRUSTED_METRICS = ("tx", "login_ok")
"""Metrics whose devices and countries the user is known by (a failed login proves nothing)."""


def _known(state: VelocityState, kind: str, value: str, before_ms: int, length_s: int) -> int:
    """1 when ``value`` took part in the user's trusted events in the window ending at
    ``before_ms`` (the established history)."""
    return int(any(state.has_value(m, kind, value, before_ms, length_s) for m in _TRUSTED_METRICS))


def detection_features(state: VelocityState, event: InputEvent, rules: RuleSet) -> Features:
    """What the combinations read from the subject's history, before ``event`` is recorded.
    Nothing when the profile has them off (the seed profile decides as before)."""
    detection = rules.detection
    if not detection.enabled or isinstance(event, GiftEvent):
        return {}
    windows = rules.velocity.windows
    settle_s = windows[detection.established_after]
    # The established history: from the horizon back until ``settle_s`` before the event.
    before_ms, length_s = at_ms_of(event) - settle_s * 1000, rules.velocity.horizon_s - settle_s
    features: Features = {}
    device = event.device_id if isinstance(event, TransactionEvent) else event.device_fingerprint
    if device is not None:
        features[KNOWN_DEVICE] = _known(state, "devices", device, before_ms, length_s)
    history = any(state.previous_second(m, before_ms) is not None for m in _TRUSTED_METRICS)
    features[USER_HISTORY] = int(history)
    if event.country is not None and history:
        features[KNOWN_COUNTRY] = _known(state, "countries", event.country, before_ms, length_s)
    if isinstance(event, TransactionEvent):
        features |= _transaction_features(state, event, detection, windows, before_ms, length_s)
    return features


def _transaction_features(
    state: VelocityState,
    event: TransactionEvent,
    detection: Detection,
    windows: dict[str, int],
    before_ms: int,
    length_s: int,
) -> Features:
    at_ms, amount = at_ms_of(event), event.amount_cents
    features: Features = {}
    payee = event.counterparty_pix_key_hash or event.counterparty_wallet
    payee = payee or event.counterparty_bank_account
    if payee is not None and state.previous_second("tx", before_ms) is not None:
        paid = state.has_value("tx", "counterparties", payee, before_ms, length_s)
        features[NEW_PAYEE] = int(not paid)
    testing = detection.card_testing
    small = testing.small_max_cents
    earlier = state.amounts("tx", at_ms, windows[testing.window])
    features[SMALL_CHARGES] = sum(1 for a in earlier if a <= small) + int(amount <= small)
    before = state.amounts("tx", at_ms, windows[testing.after_window])
    features[SMALL_CHARGES_BEFORE] = sum(1 for a in before if a <= small)
    structuring = detection.structuring
    under = [
        limit
        for limit in structuring.limits_cents
        if limit * structuring.below_fraction <= amount < limit
    ]
    if under:
        limit = max(under)
        floor = limit * structuring.below_fraction
        series = [
            a for a in state.amounts("tx", at_ms, windows[structuring.window]) if floor <= a < limit
        ]
        features[JUST_UNDER_LIMIT] = limit
        features[JUST_UNDER_COUNT] = len(series) + 1
        features[JUST_UNDER_SUM] = sum(series) + amount
    return features


def record_and_read(
    state: VelocityState,
    event: InputEvent,
    rules: RuleSet,
    entity_blocked: bool = False,
    lists: Features | None = None,
    clock_skew_s: int = 0,
) -> Features:
    """Count the event in its subject's state and return the features to decide it with;
    ``clock_skew_s``: how far ahead of its arrival the event was stamped, when it is scored
    as of its arrival (``engine.admission.as_of_arrival``).

    A re-delivered event is not counted again and gets the features it was first decided
    with, so its decision is the same.
    """
    known = state.features_of(event.event_id)
    if known is not None:
        return known
    windows, horizon_s = rules.velocity.windows, rules.velocity.horizon_s
    history = history_features(state, event, horizon_s)
    if isinstance(event, TransactionEvent):
        history |= pattern_features(state, observe(event), rules.capypay, windows)
    history |= detection_features(state, event, rules)
    if isinstance(event, GiftEvent) and event.event_type is GiftEventType.REFUND_REQUESTED:
        redeemed = state.values(REDEEMED_METRIC, "counterparties", at_ms_of(event), horizon_s)
        history[REFUND_OF_REDEEMED_FEATURE] = int(event.gift_id in redeemed)
        policy_s = windows[rules.gift.limits.refund_window]
        created = state.values(CREATED_GIFT_METRIC, "counterparties", at_ms_of(event), policy_s)
        history[REFUND_IN_POLICY_FEATURE] = int(event.gift_id in created)
    at_ms = at_ms_of(event)
    under_block = (
        isinstance(event, GiftEvent) or rules.gift.blocks.giver_block_reaches_payments
    ) and bool(state.active_blocks(at_ms))
    blocked = {
        BLOCKED_FEATURE: int(under_block),
        ENTITY_BLOCKED_FEATURE: int(entity_blocked),
    }
    counted = state.record(observe(event), horizon_s)
    if counted and isinstance(event, GiftEvent) and event.event_type is GiftEventType.GIFT_CREATED:
        gift = Observation(
            f"{event.event_id}#gift", at_ms, CREATED_GIFT_METRIC, counterparty=event.gift_id
        )
        state.record(gift, horizon_s)
    features = {**velocity_features(state, event, windows), **history, **blocked, **(lists or {})}
    if clock_skew_s:
        features[CLOCK_SKEW_FEATURE] = clock_skew_s
    if isinstance(event, TransactionEvent):
        features |= action_velocity_features(state, event, rules, counted)
    if counted:
        state.remember(event.event_id, features)
    return features
