"""The Capy Pay weighted risk model for transactions and logins (pure).

Each factor adds the points of the sub-rules that fire, capped at the factor's weight (the
blacklist factor may go to 100). Reasons carry each sub-rule's points and a
detail with the values; a capped factor adds a negative ``<FACTOR>_CAP`` reason so that the
reasons always add up to the score.

>>> from config.rules import load_rules
>>> from tests.factories import transaction
>>> from engine.lists import NO_HITS
>>> model = load_rules().capypay
>>> tx = transaction(amount_cents=10_000_000, country="IR", network_flags=["TOR", "PROXY"],
...                  occurred_at="2026-11-20T15:00:00Z")
>>> [(r.code, r.points) for r in transaction_reasons(tx, {}, model, NO_HITS)]
... # doctest: +NORMALIZE_WHITESPACE
[('VELOCITY_VOLUME', 15), ('AMOUNT_HIGH_VALUE', 10), ('AMOUNT_ROUND', 2),
 ('GEO_HIGH_RISK_COUNTRY', 8), ('GEO_TOR_VPN', 10), ('GEO_PROXY', 6), ('GEO_CAP', -14)]
"""

from __future__ import annotations

from config.rules import CapyPay
from engine.features import BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE, local_time, window_feature
from engine.lists import ListVerdict, OtherHit
from engine.money import format_brl
from engine.velocity import Features
from schemas.models import LoginEvent, NetworkFlag, Reason, TransactionEvent

_TOR_VPN = frozenset({NetworkFlag.TOR, NetworkFlag.VPN})


class _Factor:
    """Collects one factor's reasons and applies its cap."""

    def __init__(self, name: str, cap: int) -> None:
        self.name, self.cap = name, cap
        self.reasons: list[Reason] = []

    def add(self, code: str, points: float, detail: str) -> None:
        earned = int(points + 0.5)  # the seed's formulas give fractions: round half up
        if earned > 0:
            self.reasons.append(Reason(code=code, points=earned, detail=detail))

    def capped(self) -> list[Reason]:
        total = sum(r.points for r in self.reasons)
        if total <= self.cap:
            return self.reasons
        excess = total - self.cap
        return [
            *self.reasons,
            Reason(
                code=f"{self.name}_CAP",
                points=-excess,
                detail=f"{self.name.lower()} factor capped at {self.cap}",
            ),
        ]


def _local_hour(event: TransactionEvent | LoginEvent, offset_hours: int) -> tuple[int, int]:
    local = local_time(event.occurred_at, offset_hours)
    return local.hour, local.weekday()


def _geo(
    event: TransactionEvent | LoginEvent, features: Features, metric: str, model: CapyPay
) -> list[Reason]:
    geo = model.geo
    factor = _Factor("GEO", model.caps.geolocation)
    if event.country in geo.high_risk_countries:
        factor.add(
            "GEO_HIGH_RISK_COUNTRY",
            geo.high_risk_country_points,
            f"country {event.country} is on the high-risk list",
        )
    if features.get(f"{metric}.new_country"):
        factor.add(
            "GEO_NEW_COUNTRY",
            geo.new_country_points,
            f"first {metric} from {event.country} in the user's history",
        )
    anonymised = sorted(f.value for f in event.network_flags if f in _TOR_VPN)
    if anonymised:
        factor.add(
            "GEO_TOR_VPN", geo.tor_vpn_points, f"IP flagged upstream as {'/'.join(anonymised)}"
        )
    speed, km = features.get("travel.kmh", -1), features.get("travel.km", -1)
    if speed > geo.impossible_travel_kmh and km >= geo.impossible_travel_min_km:
        factor.add(
            "GEO_IMPOSSIBLE_TRAVEL",
            geo.impossible_travel_points,
            f"{km} km from the last known place at {speed} km/h",
        )
    countries = features.get(f"{metric}.countries.{model.velocity.day_window}", 0)
    if countries >= geo.country_hopping_countries:
        factor.add(
            "GEO_COUNTRY_HOPPING",
            geo.country_hopping_points,
            f"{countries} countries in {model.velocity.day_window}",
        )
    if NetworkFlag.PROXY in event.network_flags:
        factor.add("GEO_PROXY", geo.proxy_points, "IP flagged upstream as a proxy")
    return factor.capped()


def _behavioral(
    event: TransactionEvent | LoginEvent, features: Features, metric: str, model: CapyPay
) -> list[Reason]:
    rules = model.behavioral
    factor = _Factor("BEHAVIORAL", model.caps.behavioral)
    hour, _ = _local_hour(event, model.velocity.local_utc_offset_hours)
    # For transactions the fixed 0-6h signal counts under velocity; here, the user's own hours.
    if isinstance(event, LoginEvent) and hour in model.velocity.unusual_hours:
        factor.add(
            "BEHAVIOR_UNUSUAL_HOUR",
            rules.unusual_hours_points,
            f"{metric} at {hour:02d}h local time",
        )
    history = features.get("tx.hour_history", 0)
    if history >= rules.usual_hours_min_history and features.get("tx.near_hour", 0) == 0:
        factor.add(
            "BEHAVIOR_UNUSUAL_HOUR",
            rules.unusual_hours_points,
            f"transaction at {hour:02d}h local time: none of the user's {history} transactions "
            f"in {rules.usual_hours_window} was within {rules.usual_hours_tolerance}h of it",
        )
    gap = features.get(f"{metric}.seconds_since_previous", -1)
    if 0 <= gap < rules.bot_speed_seconds:
        factor.add(
            "BEHAVIOR_BOT_SPEED", rules.rapid_actions_points, f"{gap}s after the previous {metric}"
        )
    if features.get(f"{metric}.new_device"):
        factor.add(
            "BEHAVIOR_NEW_DEVICE", rules.new_device_points, "device never used by this user before"
        )
    return factor.capped()


def _velocity(event: TransactionEvent, features: Features, model: CapyPay) -> list[Reason]:
    rules = model.velocity
    hour, day = rules.hour_window, rules.day_window
    factor = _Factor("VELOCITY", model.caps.velocity)
    per_hour, per_day = (
        features.get(window_feature("tx", "count", hour), 1),
        features.get(window_feature("tx", "count", day), 1),
    )
    excess = max(per_hour - rules.transactions_per_hour, per_day - rules.transactions_per_day)
    if excess > 0:
        factor.add(
            "VELOCITY_FREQUENCY",
            min(excess * rules.points_per_extra_transaction, rules.max_frequency_points),
            f"{per_hour} transactions in {hour} (limit {rules.transactions_per_hour}), "
            f"{per_day} in {day} (limit {rules.transactions_per_day})",
        )
    volume_hour = features.get(window_feature("tx", "amount_cents", hour), event.amount_cents)
    volume_day = features.get(window_feature("tx", "amount_cents", day), event.amount_cents)
    ratio = max(volume_hour / rules.volume_per_hour_cents, volume_day / rules.volume_per_day_cents)
    if ratio > 1:
        factor.add(
            "VELOCITY_VOLUME",
            min(ratio * rules.points_per_volume_ratio, rules.max_volume_points),
            f"{format_brl(volume_hour)} in {hour}, {format_brl(volume_day)} in {day} "
            f"({ratio:.1f}x the limit)",
        )
    gap = features.get("tx.seconds_since_previous", -1)
    if 0 <= gap < rules.rapid_succession_seconds:
        factor.add(
            "VELOCITY_RAPID_SUCCESSION",
            rules.rapid_succession_points,
            f"{gap}s after the previous transaction",
        )
    local_hour, weekday = _local_hour(event, rules.local_utc_offset_hours)
    if local_hour in rules.unusual_hours:
        factor.add(
            "VELOCITY_UNUSUAL_HOUR",
            rules.unusual_hours_points,
            f"transaction at {local_hour:02d}h local time",
        )
    if weekday >= 5 and per_day >= rules.weekend_busy_transactions_per_day:
        factor.add(
            "VELOCITY_WEEKEND_ACTIVITY",
            rules.weekend_points,
            f"{per_day} transactions in {day} on a weekend",
        )
    return factor.capped()


def _amount(event: TransactionEvent, features: Features, model: CapyPay) -> list[Reason]:
    rules = model.amount
    factor = _Factor("AMOUNT", model.caps.amount)
    amount, alert = event.amount_cents, rules.single_transaction_alert_cents
    if amount >= alert:
        factor.add(
            "AMOUNT_HIGH_VALUE",
            min(
                amount / alert * rules.high_value_points_per_threshold, rules.max_high_value_points
            ),
            f"{format_brl(amount)} at or above the {format_brl(alert)} alert",
        )
    elif amount >= alert * rules.just_below_fraction:
        factor.add(
            "AMOUNT_JUST_BELOW_LIMIT",
            rules.just_below_points,
            f"{format_brl(amount)} just below the {format_brl(alert)} alert",
        )
    window = rules.average_window
    earlier = features.get(window_feature("tx", "count", window), 1) - 1
    if earlier >= rules.min_history_for_average:
        average = (
            features.get(window_feature("tx", "amount_cents", window), amount) - amount
        ) / earlier
        ratio = amount / average if average else 0.0
        if ratio > 1 + rules.unusual_amount_threshold:
            factor.add(
                "AMOUNT_UNUSUAL_FOR_USER",
                min(ratio * rules.points_per_unusual_ratio, rules.max_unusual_points),
                f"{format_brl(amount)} is {ratio:.1f}x the user's {window} average "
                f"of {format_brl(int(average))}",
            )
    if amount % rules.round_amount_unit_cents == 0:
        factor.add("AMOUNT_ROUND", rules.round_amount_points, f"round amount {format_brl(amount)}")
    day, day_volume = (
        model.velocity.day_window,
        features.get(window_feature("tx", "amount_cents", model.velocity.day_window), amount),
    )
    if day_volume >= rules.daily_volume_alert_cents:
        factor.add(
            "AMOUNT_DAILY_VOLUME",
            rules.daily_volume_points,
            f"{format_brl(day_volume)} in {day}, at or above the "
            f"{format_brl(rules.daily_volume_alert_cents)} alert",
        )
    repeats, window = features.get("tx.same_amount", 1), rules.pattern_window
    if repeats >= rules.repeated_amount_count:
        factor.add(
            "AMOUNT_REPEATED",
            rules.repeated_amount_points,
            f"{format_brl(amount)} {repeats} times in {window}",
        )
    split, split_total = (
        features.get("tx.structuring.count", 0),
        features.get("tx.structuring.amount_cents", 0),
    )
    if split >= rules.structuring_count and split_total >= alert:
        factor.add(
            "AMOUNT_STRUCTURING",
            rules.structuring_points,
            f"{split} transactions below the {format_brl(alert)} alert in {window} "
            f"add up to {format_brl(split_total)}",
        )
    return factor.capped()


_FRAUD_BLOCKS = (
    (BLOCKED_FEATURE, "BLACKLIST_FRAUD_BLOCK", "user is under an active fraud block"),
    (
        ENTITY_BLOCKED_FEATURE,
        "BLACKLIST_ENTITY_BLOCK",
        "an entity the event names (IP, device, card...) is under an active fraud block",
    ),
)


def fraud_block_hits(features: Features, model: CapyPay) -> list[OtherHit]:
    """Active fraud blocks on the user, or on an entity the event names, as block-list
    matches (the seed's HIGH): judged with the list hits, so further matches add the
    seed's fixed amount and an allow-list hit overrides them too."""
    points = model.blacklist.fraud_block_points
    return [
        OtherHit(code, points, detail)
        for feature, code, detail in _FRAUD_BLOCKS
        if features.get(feature)
    ]


def _blacklist(model: CapyPay, judged: ListVerdict) -> list[Reason]:
    """The matches as judged by ``engine.lists.judge_hits``; an allow-list override, or a
    match the maximum left no points, shows as a reason of 0 points."""
    factor = _Factor("BLACKLIST", model.caps.blacklist)
    for reason in judged.reasons:
        factor.add(reason.code, reason.points, reason.detail)
    unscored = [reason for reason in judged.reasons if reason.points == 0]
    return [*unscored, *factor.capped()]


def transaction_reasons(
    event: TransactionEvent, features: Features, model: CapyPay, judged: ListVerdict
) -> list[Reason]:
    return [
        *_blacklist(model, judged),
        *_velocity(event, features, model),
        *_amount(event, features, model),
        *_geo(event, features, "tx", model),
        *_behavioral(event, features, "tx", model),
    ]


def _login_velocity(features: Features, model: CapyPay) -> list[Reason]:
    rules = model.login_velocity
    window = rules.window
    factor = _Factor("VELOCITY", model.caps.velocity)
    failed = features.get(window_feature("login_failed", "count", window), 0)
    logins = failed + features.get(window_feature("login_ok", "count", window), 0)
    if failed > rules.failures_allowed:
        factor.add(
            "VELOCITY_LOGIN_FAILURES",
            min(
                (failed - rules.failures_allowed) * rules.points_per_extra_failure, rules.max_points
            ),
            f"{failed} failed logins in {window} (allowed {rules.failures_allowed})",
        )
    if logins > rules.logins_allowed:
        factor.add(
            "VELOCITY_LOGIN_FREQUENCY",
            min((logins - rules.logins_allowed) * rules.points_per_extra_login, rules.max_points),
            f"{logins} logins in {window} (allowed {rules.logins_allowed})",
        )
    return factor.capped()


def login_reasons(
    event: LoginEvent, features: Features, model: CapyPay, judged: ListVerdict
) -> list[Reason]:
    metric = "login_ok" if event.success else "login_failed"
    return [
        *_blacklist(model, judged),
        *_login_velocity(features, model),
        *_geo(event, features, metric, model),
        *_behavioral(event, features, metric, model),
    ]
