"""The Capy Pay weighted risk model for transactions and logins (pure).

Each factor adds the points of its rules that fire, capped at the factor's weight (the
blacklist factor may go to 100). Each rule is one evaluator (``engine.evaluators.Rule``);
reasons carry each rule's points and a detail with the values; a capped factor adds a
negative ``<FACTOR>_CAP`` reason so that the reasons always add up to the score.

>>> from config.rules import load_rules
>>> from tests.factories import transaction
>>> from engine.lists import NO_HITS
>>> rules = load_rules()
>>> tx = transaction(amount_cents=10_000_000, country="IR", network_flags=["TOR", "PROXY"],
...                  occurred_at="2026-11-20T15:00:00Z")
>>> [(r.code, r.points) for r in transaction_reasons(tx, {}, rules, NO_HITS)]
... # doctest: +NORMALIZE_WHITESPACE
[('VELOCITY_VOLUME', 15), ('AMOUNT_HIGH_VALUE', 10), ('AMOUNT_ROUND', 2),
 ('GEO_HIGH_RISK_COUNTRY', 8), ('GEO_TOR_VPN', 10), ('GEO_PROXY', 6), ('GEO_CAP', -14)]
"""

from __future__ import annotations

from config.rules import CapyPay, RuleSet
from engine.evaluators import (
    Facts,
    Fired,
    JudgedSection,
    Rule,
    Section,
    reasons_of,
    scored_of,
    transaction_of,
)
from engine.features import BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE, window_feature
from engine.lists import ALLOW_PREFIX, BLOCK_PREFIX, WHITELIST_OVERRIDE, ListVerdict, OtherHit
from engine.money import format_brl
from engine.velocity import Features
from schemas.models import EventKind, LoginEvent, NetworkFlag, Reason, TransactionEvent

_TOR_VPN = frozenset({NetworkFlag.TOR, NetworkFlag.VPN})
_TX = frozenset({EventKind.TRANSACTION})
_LOGIN = frozenset({EventKind.LOGIN})
_TX_AND_LOGIN = frozenset({EventKind.TRANSACTION, EventKind.LOGIN})
_CP_BLACKLIST = 'CP "Verificação de Blacklist"'


# The blacklist factor: the list and fraud-block matches, judged together.


def _judged(code: str, facts: Facts) -> Fired | None:
    for reason in facts.judged.reasons:
        if reason.code == code:
            return float(reason.points), reason.detail
    return None


def _list_hit(facts: Facts) -> Fired | None:
    return _judged("BLACKLIST_LIST_HIT", facts)


def _fraud_block(facts: Facts) -> Fired | None:
    return _judged("BLACKLIST_FRAUD_BLOCK", facts)


def _entity_block(facts: Facts) -> Fired | None:
    return _judged("BLACKLIST_ENTITY_BLOCK", facts)


def _allow_listed(facts: Facts) -> Fired | None:
    return _judged(WHITELIST_OVERRIDE, facts)


_EVERY_KIND = frozenset(EventKind)
_JUDGED = (f"{BLOCK_PREFIX}*", f"{ALLOW_PREFIX}*", BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE)
"""What the judgment of the matches reads (fraud blocks count for transactions and logins)."""
_MATCHES = (
    "the most severe match's points, + lists.additional_match_points per further match, "
    "at most lists.max_points (engine.lists.judge_hits)"
)
ALLOW_LISTED = Rule(
    WHITELIST_OVERRIDE,
    _allow_listed,
    _EVERY_KIND,
    _JUDGED,
    "",
    "any of the event's parties is allow-listed: overrides list hits and fraud blocks",
    'CP "Whitelist sempre sobrepõe"',
)
FRAUD_BLOCK = Rule(
    "BLACKLIST_FRAUD_BLOCK",
    _fraud_block,
    _TX_AND_LOGIN,
    _JUDGED,
    "capypay.blacklist.fraud_block_points",
    f"the user is under an active fraud block: a HIGH match; {_MATCHES}",
    "CP severityScores high, multipleMatches",
)
ENTITY_BLOCK = Rule(
    "BLACKLIST_ENTITY_BLOCK",
    _entity_block,
    _TX_AND_LOGIN,
    _JUDGED,
    "capypay.blacklist.fraud_block_points",
    f"the event names an entity under an active fraud block: a HIGH match; {_MATCHES}",
    "CP severityScores high, multipleMatches",
)
LIST_HIT = Rule(
    "BLACKLIST_LIST_HIT",
    _list_hit,
    _EVERY_KIND,
    _JUDGED,
    "lists.max_points",
    f"block-list hits on the event's parties by severity (lists.severity_points); {_MATCHES}",
    _CP_BLACKLIST,
)
LIST_RULES = (ALLOW_LISTED, FRAUD_BLOCK, ENTITY_BLOCK, LIST_HIT)


# Velocity (transactions).


def _frequency(facts: Facts) -> Fired | None:
    rules, features = facts.capypay.velocity, facts.features
    hour, day = rules.hour_window, rules.day_window
    per_hour = features.get(window_feature("tx", "count", hour), 1)
    per_day = features.get(window_feature("tx", "count", day), 1)
    excess = max(per_hour - rules.transactions_per_hour, per_day - rules.transactions_per_day)
    if excess <= 0:
        return None
    return (
        min(excess * rules.points_per_extra_transaction, rules.max_frequency_points),
        f"{per_hour} transactions in {hour} (limit {rules.transactions_per_hour}), "
        f"{per_day} in {day} (limit {rules.transactions_per_day})",
    )


def _volume(facts: Facts) -> Fired | None:
    rules, features, amount = (
        facts.capypay.velocity,
        facts.features,
        transaction_of(facts).amount_cents,
    )
    hour, day = rules.hour_window, rules.day_window
    volume_hour = features.get(window_feature("tx", "amount_cents", hour), amount)
    volume_day = features.get(window_feature("tx", "amount_cents", day), amount)
    ratio = max(volume_hour / rules.volume_per_hour_cents, volume_day / rules.volume_per_day_cents)
    if ratio <= 1:
        return None
    return (
        min(ratio * rules.points_per_volume_ratio, rules.max_volume_points),
        f"{format_brl(volume_hour)} in {hour}, {format_brl(volume_day)} in {day} "
        f"({ratio:.1f}x the limit)",
    )


def _rapid_succession(facts: Facts) -> Fired | None:
    rules = facts.capypay.velocity
    gap = facts.features.get("tx.seconds_since_previous", -1)
    if 0 <= gap < rules.rapid_succession_seconds:
        return rules.rapid_succession_points, f"{gap}s after the previous transaction"
    return None


def _unusual_hour(facts: Facts) -> Fired | None:
    rules = facts.capypay.velocity
    local_hour = facts.local.hour
    if local_hour in rules.unusual_hours:
        return rules.unusual_hours_points, f"transaction at {local_hour:02d}h local time"
    return None


def _weekend(facts: Facts) -> Fired | None:
    rules = facts.capypay.velocity
    day = rules.day_window
    weekday = facts.local.weekday()
    per_day = facts.features.get(window_feature("tx", "count", day), 1)
    if weekday >= 5 and per_day >= rules.weekend_busy_transactions_per_day:
        return rules.weekend_points, f"{per_day} transactions in {day} on a weekend"
    return None


_CP_VELOCITY = 'CP "Análise de Velocidade"'
VELOCITY_RULES = (
    Rule(
        "VELOCITY_FREQUENCY",
        _frequency,
        _TX,
        ("tx.count.*",),
        "capypay.velocity.max_frequency_points",
        "points_per_extra_transaction per transaction over transactions_per_hour in the hour "
        "window or transactions_per_day in the day window, at most max_frequency_points",
        _CP_VELOCITY,
    ),
    Rule(
        "VELOCITY_VOLUME",
        _volume,
        _TX,
        ("tx.amount_cents.*",),
        "capypay.velocity.max_volume_points",
        "points_per_volume_ratio per ratio of the hour's or the day's volume to its limit, "
        "above 1, at most max_volume_points",
        _CP_VELOCITY,
    ),
    Rule(
        "VELOCITY_RAPID_SUCCESSION",
        _rapid_succession,
        _TX,
        ("tx.seconds_since_previous",),
        "capypay.velocity.rapid_succession_points",
        "the previous transaction less than rapid_succession_seconds ago",
        'CP "rapid_succession"',
    ),
    Rule(
        "VELOCITY_UNUSUAL_HOUR",
        _unusual_hour,
        _TX,
        (),
        "capypay.velocity.unusual_hours_points",
        "a transaction at one of unusual_hours, local time",
        'CP "unusual_hours"',
    ),
    Rule(
        "VELOCITY_WEEKEND_ACTIVITY",
        _weekend,
        _TX,
        ("tx.count.*",),
        "capypay.velocity.weekend_points",
        "a weekend day with at least weekend_busy_transactions_per_day in the day window "
        "(threshold ours)",
        'CP "weekend_activity"',
    ),
)


# Velocity (logins).


def _login_counts(facts: Facts) -> tuple[int, int]:
    window = facts.capypay.login_velocity.window
    failed = facts.features.get(window_feature("login_failed", "count", window), 0)
    return failed, failed + facts.features.get(window_feature("login_ok", "count", window), 0)


def _login_failures(facts: Facts) -> Fired | None:
    rules = facts.capypay.login_velocity
    failed, _ = _login_counts(facts)
    if failed <= rules.failures_allowed:
        return None
    return (
        min((failed - rules.failures_allowed) * rules.points_per_extra_failure, rules.max_points),
        f"{failed} failed logins in {rules.window} (allowed {rules.failures_allowed})",
    )


def _login_frequency(facts: Facts) -> Fired | None:
    rules = facts.capypay.login_velocity
    _, logins = _login_counts(facts)
    if logins <= rules.logins_allowed:
        return None
    return (
        min((logins - rules.logins_allowed) * rules.points_per_extra_login, rules.max_points),
        f"{logins} logins in {rules.window} (allowed {rules.logins_allowed})",
    )


LOGIN_VELOCITY_RULES = (
    Rule(
        "VELOCITY_LOGIN_FAILURES",
        _login_failures,
        _LOGIN,
        ("login_failed.count.*",),
        "capypay.login_velocity.max_points",
        "points_per_extra_failure per failed login over failures_allowed in the window, this "
        "one included (also on the success that follows), at most max_points (numbers ours)",
        'CP "login_frequency"',
    ),
    Rule(
        "VELOCITY_LOGIN_FREQUENCY",
        _login_frequency,
        _LOGIN,
        ("login_failed.count.*", "login_ok.count.*"),
        "capypay.login_velocity.max_points",
        "points_per_extra_login per login over logins_allowed in the window, at most "
        "max_points (numbers ours)",
        'CP "login_frequency"',
    ),
)


# Amount (transactions).


def _high_value(facts: Facts) -> Fired | None:
    rules, amount = facts.capypay.amount, transaction_of(facts).amount_cents
    alert = rules.single_transaction_alert_cents
    if amount < alert:
        return None
    return (
        min(amount / alert * rules.high_value_points_per_threshold, rules.max_high_value_points),
        f"{format_brl(amount)} at or above the {format_brl(alert)} alert",
    )


def _unusual_for_user(facts: Facts) -> Fired | None:
    rules, features, amount = (
        facts.capypay.amount,
        facts.features,
        transaction_of(facts).amount_cents,
    )
    window = rules.average_window
    earlier = features.get(window_feature("tx", "count", window), 1) - 1
    if earlier < rules.min_history_for_average:
        return None
    total = features.get(window_feature("tx", "amount_cents", window), amount)
    average = (total - amount) / earlier
    ratio = amount / average if average else 0.0
    if ratio <= 1 + rules.unusual_amount_threshold:
        return None
    return (
        min(ratio * rules.points_per_unusual_ratio, rules.max_unusual_points),
        f"{format_brl(amount)} is {ratio:.1f}x the user's {window} average "
        f"of {format_brl(int(average))}",
    )


def _round(facts: Facts) -> Fired | None:
    rules, amount = facts.capypay.amount, transaction_of(facts).amount_cents
    if amount % rules.round_amount_unit_cents == 0:
        return rules.round_amount_points, f"round amount {format_brl(amount)}"
    return None


def _just_below(facts: Facts) -> Fired | None:
    rules, amount = facts.capypay.amount, transaction_of(facts).amount_cents
    alert = rules.single_transaction_alert_cents
    if alert * rules.just_below_fraction <= amount < alert:
        return (
            rules.just_below_points,
            f"{format_brl(amount)} just below the {format_brl(alert)} alert",
        )
    return None


def _daily_volume(facts: Facts) -> Fired | None:
    rules, amount = facts.capypay.amount, transaction_of(facts).amount_cents
    day = facts.capypay.velocity.day_window
    day_volume = facts.features.get(window_feature("tx", "amount_cents", day), amount)
    if day_volume < rules.daily_volume_alert_cents:
        return None
    return (
        rules.daily_volume_points,
        f"{format_brl(day_volume)} in {day}, at or above the "
        f"{format_brl(rules.daily_volume_alert_cents)} alert",
    )


def _repeated(facts: Facts) -> Fired | None:
    rules = facts.capypay.amount
    repeats = facts.features.get("tx.same_amount", 1)
    if repeats < rules.repeated_amount_count:
        return None
    amount = format_brl(transaction_of(facts).amount_cents)
    return rules.repeated_amount_points, f"{amount} {repeats} times in {rules.pattern_window}"


def _split(facts: Facts) -> Fired | None:
    rules, features = facts.capypay.amount, facts.features
    alert = rules.single_transaction_alert_cents
    split = features.get("tx.structuring.count", 0)
    split_total = features.get("tx.structuring.amount_cents", 0)
    if split < rules.structuring_count or split_total < alert:
        return None
    return (
        rules.structuring_points,
        f"{split} transactions below the {format_brl(alert)} alert in {rules.pattern_window} "
        f"add up to {format_brl(split_total)}",
    )


_CP_AMOUNT = 'CP "Análise de Valor"'
AMOUNT_RULES = (
    Rule(
        "AMOUNT_HIGH_VALUE",
        _high_value,
        _TX,
        (),
        "capypay.amount.max_high_value_points",
        "from single_transaction_alert_cents: amount / alert x high_value_points_per_threshold, "
        "at most max_high_value_points",
        f"{_CP_AMOUNT} high_value",
    ),
    Rule(
        "AMOUNT_JUST_BELOW_LIMIT",
        _just_below,
        _TX,
        (),
        "capypay.amount.just_below_points",
        "from just_below_fraction of the alert up to it (points ours)",
        f"{_CP_AMOUNT} just_below_limits",
    ),
    Rule(
        "AMOUNT_UNUSUAL_FOR_USER",
        _unusual_for_user,
        _TX,
        ("tx.count.*", "tx.amount_cents.*"),
        "capypay.amount.max_unusual_points",
        "more than unusual_amount_threshold above the user's average in average_window "
        "(min_history_for_average earlier): ratio x points_per_unusual_ratio, at most "
        "max_unusual_points",
        f"{_CP_AMOUNT} unusual_for_user",
    ),
    Rule(
        "AMOUNT_ROUND",
        _round,
        _TX,
        (),
        "capypay.amount.round_amount_points",
        "a multiple of round_amount_unit_cents",
        f"{_CP_AMOUNT} round_amounts",
    ),
    Rule(
        "AMOUNT_DAILY_VOLUME",
        _daily_volume,
        _TX,
        ("tx.amount_cents.*",),
        "capypay.amount.daily_volume_points",
        "daily_volume_alert_cents or more in the day window (seed threshold, points ours)",
        f"{_CP_AMOUNT} daily_volume_alert",
    ),
    Rule(
        "AMOUNT_REPEATED",
        _repeated,
        _TX,
        ("tx.same_amount",),
        "capypay.amount.repeated_amount_points",
        "the same amount repeated_amount_count times in pattern_window (ours)",
        f"{_CP_AMOUNT} repeated_amounts",
    ),
    Rule(
        "AMOUNT_STRUCTURING",
        _split,
        _TX,
        ("tx.structuring.*",),
        "capypay.amount.structuring_points",
        "structuring_count or more transactions in pattern_window, each a large share of the "
        "alert but under it, adding up to it (ours)",
        f"{_CP_AMOUNT} structuring",
    ),
)


# Geolocation (transactions and logins).


def _high_risk_country(facts: Facts) -> Fired | None:
    geo, country = facts.capypay.geo, scored_of(facts).country
    if country in geo.high_risk_countries:
        return geo.high_risk_country_points, f"country {country} is on the high-risk list"
    return None


def _new_country(facts: Facts) -> Fired | None:
    event = scored_of(facts)
    metric = facts.metric
    if facts.features.get(f"{metric}.new_country"):
        points = facts.capypay.geo.new_country_points
        return points, f"first {metric} from {event.country} in the user's history"
    return None


def _tor_vpn(facts: Facts) -> Fired | None:
    anonymised = sorted(f.value for f in scored_of(facts).network_flags if f in _TOR_VPN)
    if anonymised:
        points = facts.capypay.geo.tor_vpn_points
        return points, f"IP flagged upstream as {'/'.join(anonymised)}"
    return None


def _impossible_travel(facts: Facts) -> Fired | None:
    geo, features = facts.capypay.geo, facts.features
    speed, km = features.get("travel.kmh", -1), features.get("travel.km", -1)
    if speed > geo.impossible_travel_kmh and km >= geo.impossible_travel_min_km:
        points = geo.impossible_travel_points
        return points, f"{km} km from the last known place at {speed} km/h"
    return None


def _country_hopping(facts: Facts) -> Fired | None:
    geo, day = facts.capypay.geo, facts.capypay.velocity.day_window
    metric = facts.metric
    countries = facts.features.get(f"{metric}.countries.{day}", 0)
    if countries >= geo.country_hopping_countries:
        return geo.country_hopping_points, f"{countries} countries in {day}"
    return None


def _proxy(facts: Facts) -> Fired | None:
    if NetworkFlag.PROXY in scored_of(facts).network_flags:
        return facts.capypay.geo.proxy_points, "IP flagged upstream as a proxy"
    return None


_CP_GEO = 'CP "Análise Geográfica"'
GEO_RULES = (
    Rule(
        "GEO_HIGH_RISK_COUNTRY",
        _high_risk_country,
        _TX_AND_LOGIN,
        (),
        "capypay.geo.high_risk_country_points",
        "the event's country is one of high_risk_countries",
        _CP_GEO,
    ),
    Rule(
        "GEO_NEW_COUNTRY",
        _new_country,
        _TX_AND_LOGIN,
        ("*.new_country",),
        "capypay.geo.new_country_points",
        "the first event from that country for a user with history",
        f"{_CP_GEO} new_country",
    ),
    Rule(
        "GEO_TOR_VPN",
        _tor_vpn,
        _TX_AND_LOGIN,
        (),
        "capypay.geo.tor_vpn_points",
        "the event's IP flagged TOR or VPN upstream",
        f"{_CP_GEO} tor_vpn",
    ),
    Rule(
        "GEO_IMPOSSIBLE_TRAVEL",
        _impossible_travel,
        _TX_AND_LOGIN,
        ("travel.*",),
        "capypay.geo.impossible_travel_points",
        "faster than impossible_travel_kmh from the last known place, at least "
        "impossible_travel_min_km away (constants ours)",
        f"{_CP_GEO} impossible_travel",
    ),
    Rule(
        "GEO_COUNTRY_HOPPING",
        _country_hopping,
        _TX_AND_LOGIN,
        ("*.countries.*",),
        "capypay.geo.country_hopping_points",
        "country_hopping_countries countries in the day window (constants ours)",
        f"{_CP_GEO} country_hopping",
    ),
    Rule(
        "GEO_PROXY",
        _proxy,
        _TX_AND_LOGIN,
        (),
        "capypay.geo.proxy_points",
        "the event's IP flagged as a proxy upstream",
        f"{_CP_GEO} proxy_detected",
    ),
)


# Behaviour (transactions and logins).


def _behaviour_hour(facts: Facts) -> Fired | None:
    """Logins: the fixed unusual hours; transactions: the user's own hours (for them the
    fixed hours count under velocity)."""
    capypay, event = facts.capypay, scored_of(facts)
    rules = capypay.behavioral
    hour = facts.local.hour
    if isinstance(event, LoginEvent):
        if hour in capypay.velocity.unusual_hours:
            return rules.unusual_hours_points, f"{facts.metric} at {hour:02d}h local time"
        return None
    history = facts.features.get("tx.hour_history", 0)
    if history >= rules.usual_hours_min_history and facts.features.get("tx.near_hour", 0) == 0:
        return (
            rules.unusual_hours_points,
            f"transaction at {hour:02d}h local time: none of the user's {history} transactions "
            f"in {rules.usual_hours_window} was within {rules.usual_hours_tolerance}h of it",
        )
    return None


def _bot_speed(facts: Facts) -> Fired | None:
    rules, metric = facts.capypay.behavioral, facts.metric
    gap = facts.features.get(f"{metric}.seconds_since_previous", -1)
    if 0 <= gap < rules.bot_speed_seconds:
        return rules.rapid_actions_points, f"{gap}s after the previous {metric}"
    return None


def _new_device(facts: Facts) -> Fired | None:
    if facts.features.get(f"{facts.metric}.new_device"):
        points = facts.capypay.behavioral.new_device_points
        return points, "device never used by this user before"
    return None


_CP_BEHAVIOUR = 'CP "Análise Comportamental"'
BEHAVIOUR_RULES = (
    Rule(
        "BEHAVIOR_UNUSUAL_HOUR",
        _behaviour_hour,
        _TX_AND_LOGIN,
        ("tx.hour_history", "tx.near_hour"),
        "capypay.behavioral.unusual_hours_points",
        "logins at one of the unusual hours; a transaction with none of the user's "
        "usual_hours_min_history transactions of usual_hours_window within "
        "usual_hours_tolerance hours of its clock hour",
        f"{_CP_BEHAVIOUR} unusual_hours",
    ),
    Rule(
        "BEHAVIOR_BOT_SPEED",
        _bot_speed,
        _TX_AND_LOGIN,
        ("*.seconds_since_previous",),
        "capypay.behavioral.rapid_actions_points",
        "less than bot_speed_seconds after the previous action",
        f"{_CP_BEHAVIOUR} rapid_actions",
    ),
    Rule(
        "BEHAVIOR_NEW_DEVICE",
        _new_device,
        _TX_AND_LOGIN,
        ("*.new_device",),
        "capypay.behavioral.new_device_points",
        "a device the user never used",
        f"{_CP_BEHAVIOUR} inconsistent_behavior",
    ),
)


BLACKLIST = JudgedSection(LIST_RULES, "BLACKLIST", lambda facts: facts.capypay.caps.blacklist)
TRANSACTION_SECTIONS = (
    BLACKLIST,
    Section(VELOCITY_RULES, "VELOCITY", lambda facts: facts.capypay.caps.velocity),
    Section(AMOUNT_RULES, "AMOUNT", lambda facts: facts.capypay.caps.amount),
    Section(GEO_RULES, "GEO", lambda facts: facts.capypay.caps.geolocation),
    Section(BEHAVIOUR_RULES, "BEHAVIORAL", lambda facts: facts.capypay.caps.behavioral),
)
LOGIN_SECTIONS = (
    BLACKLIST,
    Section(LOGIN_VELOCITY_RULES, "VELOCITY", lambda facts: facts.capypay.caps.velocity),
    TRANSACTION_SECTIONS[3],
    TRANSACTION_SECTIONS[4],
)


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


def transaction_reasons(
    event: TransactionEvent, features: Features, rules: RuleSet, judged: ListVerdict
) -> list[Reason]:
    facts = Facts(event, features, rules, judged)
    return reasons_of(TRANSACTION_SECTIONS, facts)


def login_reasons(
    event: LoginEvent, features: Features, rules: RuleSet, judged: ListVerdict
) -> list[Reason]:
    facts = Facts(event, features, rules, judged)
    return reasons_of(LOGIN_SECTIONS, facts)
