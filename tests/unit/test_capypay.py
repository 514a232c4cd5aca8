"""The Capy Pay weighted model: every factor formula and constant of the seed."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from config.rules import RulesError, RuleSet, default_rules_path, load_rules, parse_rules
from engine.admission import subject_of
from engine.capypay import login_reasons, transaction_reasons
from engine.decide import decide_event
from engine.lists import NO_HITS
from engine.scoring import Assessment
from engine.velocity import VelocityState
from schemas.models import Reason, RiskBand, TransactionType, Verdict
from tests import factories
from tests.factories import SEED_RULES, decide, decide_all

WEEKDAY_AFTERNOON = datetime.fromisoformat("2026-11-18T18:00:00+00:00")  # Wed 15h in Brasília


def _points(reasons: list[Reason]) -> dict[str, int]:
    return {r.code: r.points for r in reasons}


def _tx(**fields: object) -> factories.TransactionEvent:
    base = {"network_flags": [], "occurred_at": WEEKDAY_AFTERNOON, "amount_cents": 12_345}
    return factories.transaction(**(base | fields))


def _burst(user: str, count: int, spacing_s: int, amount: int = 10_000, **fields: object):
    return [
        _tx(
            user_id=user,
            amount_cents=amount,
            occurred_at=WEEKDAY_AFTERNOON + timedelta(seconds=n * spacing_s),
            **fields,
        )
        for n in range(count)
    ]


def test_frequency_excess_two_points_per_extra_transaction() -> None:
    """'15 transações/hora = 10 pontos'."""
    last = decide_all(_burst("freq", 15, spacing_s=240))[-1]
    assert _points(list(last.reasons))["VELOCITY_FREQUENCY"] == 10
    assert "15 transactions in 1h (limit 10)" in last.reasons[0].detail


def test_frequency_points_stop_at_twenty_and_factor_is_capped() -> None:
    last = decide_all(_burst("many", 30, spacing_s=1))[-1]
    points = _points(list(last.reasons))
    assert points["VELOCITY_FREQUENCY"] == 20
    assert sum(r.points for r in last.reasons if r.code.startswith("VELOCITY")) == 20


def test_volume_twice_the_hourly_limit_is_ten_points() -> None:
    """'2x volume = 10 pontos': R$ 20.000 in an hour against R$ 10.000."""
    results = decide_all(_burst("vol", 2, spacing_s=600, amount=1_000_000))
    assert _points(list(results[1].reasons))["VELOCITY_VOLUME"] == 10
    assert "VELOCITY_VOLUME" not in _points(list(results[0].reasons))


def test_rapid_succession_under_five_minutes() -> None:
    results = decide_all(_burst("rapid", 2, spacing_s=120))
    assert _points(list(results[1].reasons)) == {"VELOCITY_RAPID_SUCCESSION": 5}
    assert results[1].reasons[0].detail == "120s after the previous transaction"


@pytest.mark.parametrize(("utc_hour", "fires"), [(2, False), (3, True), (8, True), (9, False)])
def test_unusual_hours_are_local_zero_to_six(utc_hour: int, fires: bool) -> None:
    at = WEEKDAY_AFTERNOON.replace(hour=utc_hour)
    assert ("VELOCITY_UNUSUAL_HOUR" in _points(list(decide(_tx(occurred_at=at)).reasons))) is fires


def test_busy_weekend_adds_two_points() -> None:
    saturday = datetime.fromisoformat("2026-11-21T15:00:00+00:00")
    results = decide_all(
        [_tx(user_id="wkd", occurred_at=saturday + timedelta(hours=n)) for n in range(5)]
    )
    assert "VELOCITY_WEEKEND_ACTIVITY" not in _points(list(results[3].reasons))
    assert _points(list(results[4].reasons))["VELOCITY_WEEKEND_ACTIVITY"] == 2


@pytest.mark.parametrize(
    ("reais", "points"), [(49_999, 0), (50_000, 5), (75_000, 8), (100_000, 10), (300_000, 10)]
)
def test_high_value_formula(reais: int, points: int) -> None:
    """'min(amount / threshold * 5, 10)': R$ 100k = 10 points."""
    reasons = transaction_reasons(_tx(amount_cents=reais * 100), {}, SEED_RULES, NO_HITS)
    assert _points(reasons).get("AMOUNT_HIGH_VALUE", 0) == points


def test_just_below_the_alert_threshold() -> None:
    reasons = transaction_reasons(_tx(amount_cents=4_800_000), {}, SEED_RULES, NO_HITS)
    assert _points(reasons)["AMOUNT_JUST_BELOW_LIMIT"] == 3


def test_round_amounts() -> None:
    assert "AMOUNT_ROUND" in _points(
        transaction_reasons(_tx(amount_cents=1_000_000), {}, SEED_RULES, NO_HITS)
    )
    assert "AMOUNT_ROUND" not in _points(
        transaction_reasons(_tx(amount_cents=1_000_100), {}, SEED_RULES, NO_HITS)
    )


def test_unusual_for_user_three_times_the_average_is_six_points() -> None:
    """'3x média do usuário = 6 pontos', after enough history to have an average."""
    history = [
        _tx(user_id="avg", amount_cents=10_000, occurred_at=WEEKDAY_AFTERNOON - timedelta(days=d))
        for d in (5, 4, 3)
    ]
    spike = _tx(user_id="avg", amount_cents=30_000)
    last = decide_all([*history, spike])[-1]
    assert _points(list(last.reasons))["AMOUNT_UNUSUAL_FOR_USER"] == 6
    assert "3.0x the user's 30d average of R$ 100,00" in last.reasons[0].detail


def test_no_average_without_history() -> None:
    history = [
        _tx(user_id="new", amount_cents=10_000, occurred_at=WEEKDAY_AFTERNOON - timedelta(days=1))
    ]
    last = decide_all([*history, _tx(user_id="new", amount_cents=90_000)])[-1]
    assert "AMOUNT_UNUSUAL_FOR_USER" not in _points(list(last.reasons))


def test_geo_factor_is_capped_at_ten() -> None:
    reasons = transaction_reasons(
        _tx(country="KP", network_flags=["VPN", "PROXY"]), {}, SEED_RULES, NO_HITS
    )
    points = _points(reasons)
    assert (points["GEO_HIGH_RISK_COUNTRY"], points["GEO_TOR_VPN"], points["GEO_PROXY"]) == (
        8,
        10,
        6,
    )
    assert points["GEO_CAP"] == -14


def test_new_country_and_new_device_need_history() -> None:
    first = _tx(
        user_id="geo",
        country="BR",
        device_id="d1",
        occurred_at=WEEKDAY_AFTERNOON - timedelta(days=2),
    )
    moved = _tx(user_id="geo", country="PT", device_id="d2")
    results = decide_all([first, moved])
    assert _points(list(results[0].reasons)) == {}
    points = _points(list(results[1].reasons))
    assert (points["GEO_NEW_COUNTRY"], points["BEHAVIOR_NEW_DEVICE"]) == (5, 4)
    assert "BEHAVIORAL_CAP" not in points


def test_bot_speed_actions() -> None:
    results = decide_all(_burst("bot", 2, spacing_s=1))
    points = _points(list(results[1].reasons))
    assert points["BEHAVIOR_BOT_SPEED"] == 2


def test_score_is_the_sum_of_reasons_and_bands_follow() -> None:
    risky = _tx(
        user_id="sum",
        amount_cents=10_000_000,
        country="IR",
        network_flags=["TOR"],
        occurred_at=WEEKDAY_AFTERNOON.replace(hour=6),
    )
    assessment = decide(risky)
    assert assessment.score == sum(r.points for r in assessment.reasons)
    # velocity 15 + 3 (03h local), amount 12, geo 18 capped at 10, behaviour 0
    assert assessment.score == 18 + 12 + 10
    assert (assessment.band, assessment.verdict) == (RiskBand.MEDIUM, Verdict.REVIEW)


def test_crypto_swap_blocks_from_medium_risk() -> None:
    swap = _tx(
        user_id="swap", tx_type="CRYPTO_SWAP", amount_cents=10_000_000, network_flags=["TOR"]
    )
    pix = _tx(user_id="pix", tx_type="PIX_TRANSFER", amount_cents=10_000_000, network_flags=["TOR"])
    assert (decide(pix).band, decide(pix).verdict) == (RiskBand.MEDIUM, Verdict.REVIEW)
    blocked = decide(swap)
    assert blocked.verdict is Verdict.BLOCK
    assert "ACTION_BLOCK_ON_MEDIUM_RISK" in _points(list(blocked.reasons))


def _swap_rules(**options: object) -> RuleSet:
    """The seed profile with the crypto swap's action options changed."""
    rules = SEED_RULES
    swap = rules.capypay.actions[TransactionType.CRYPTO_SWAP].model_copy(update=options)
    capypay = rules.capypay.model_copy(update={"actions": {TransactionType.CRYPTO_SWAP: swap}})
    return rules.model_copy(update={"capypay": capypay})


def _decide_with(rules: RuleSet, events: list[factories.TransactionEvent]) -> list[Assessment]:
    states: dict[str, VelocityState] = defaultdict(VelocityState)
    return [decide_event(states[subject_of(e).key], e, rules).assessment for e in events]


def _swaps(user: str, amounts: list[int], spacing_s: int, **fields: object):
    return [
        _tx(
            user_id=user,
            tx_type="CRYPTO_SWAP",
            amount_cents=amount,
            occurred_at=WEEKDAY_AFTERNOON + timedelta(seconds=n * spacing_s),
            **fields,
        )
        for n, amount in enumerate(amounts)
    ]


def test_high_value_crypto_swap_is_reviewed_even_at_low_risk() -> None:
    """Without the swap's velocity limit: with it, R$ 100.000 is over R$ 50.000 in the hour."""
    swap = _tx(user_id="swap-hv", tx_type="CRYPTO_SWAP", amount_cents=10_000_000)
    assessment = _decide_with(_swap_rules(velocity=None), [swap])[0]
    assert (assessment.score, assessment.band) == (27, RiskBand.LOW)
    assert assessment.verdict is Verdict.REVIEW
    assert [r.code for r in assessment.reasons][-2:] == [
        "ACTION_HIGH_VALUE_REVIEW",
        "ACTION_MANUAL_REVIEW_REQUIRED",
    ]
    assert decide(_tx(user_id="pix-hv", amount_cents=10_000_000)).verdict is Verdict.ALLOW


def test_shipped_swap_volume_limit_blocks_what_the_high_value_review_would_review() -> None:
    """The seed's R$ 50.000 an hour is below its R$ 100.000 review: such a swap is blocked."""
    blocked = decide(_tx(user_id="swap-hv-vol", tx_type="CRYPTO_SWAP", amount_cents=10_000_000))
    assert blocked.band is RiskBand.LOW and blocked.verdict is Verdict.BLOCK
    assert [r.code for r in blocked.reasons if r.code.startswith("ACTION_")] == [
        "ACTION_VELOCITY_LIMIT"
    ]


def test_reviewed_crypto_swap_must_wait_for_an_analyst() -> None:
    """requireManualReview: a REVIEW swap is held, not "continued with flag"."""
    rules = _swap_rules(block_on_medium_risk=False, velocity=None)
    risky = {"amount_cents": 10_000_000, "network_flags": ["TOR"]}
    swap, pix = _decide_with(
        rules,
        [
            _tx(user_id="mr-swap", tx_type="CRYPTO_SWAP", **risky),
            _tx(user_id="mr-pix", tx_type="PIX_TRANSFER", **risky),
        ],
    )
    assert (swap.band, swap.verdict) == (RiskBand.MEDIUM, Verdict.REVIEW)
    held = swap.reasons[-1]
    assert (held.code, held.points) == ("ACTION_MANUAL_REVIEW_REQUIRED", 0)
    assert "hold the transaction until an analyst decides" in held.detail
    assert pix.verdict is Verdict.REVIEW
    assert "ACTION_MANUAL_REVIEW_REQUIRED" not in _points(list(pix.reasons))
    optional = _swap_rules(block_on_medium_risk=False, velocity=None, require_manual_review=False)
    unheld = _decide_with(optional, [_tx(user_id="mr-off", tx_type="CRYPTO_SWAP", **risky)])[0]
    assert unheld.verdict is Verdict.REVIEW
    assert "ACTION_MANUAL_REVIEW_REQUIRED" not in _points(list(unheld.reasons))


def test_no_manual_review_reason_on_allowed_or_blocked_swaps() -> None:
    allowed = decide(_tx(user_id="mr-allow", tx_type="CRYPTO_SWAP"))
    medium = decide(
        _tx(
            user_id="mr-block",
            tx_type="CRYPTO_SWAP",
            amount_cents=10_000_000,
            network_flags=["TOR"],
        )
    )
    burst = decide_all(_swaps("mr-burst", [10_000] * 6, spacing_s=600))[-1]
    assert allowed.verdict is Verdict.ALLOW
    assert medium.verdict is Verdict.BLOCK and burst.verdict is Verdict.BLOCK
    for assessment in (allowed, medium, burst):
        assert "ACTION_MANUAL_REVIEW_REQUIRED" not in _points(list(assessment.reasons))


def test_sixth_crypto_swap_in_an_hour_is_blocked() -> None:
    """velocityCheckMiddleware({ transactionsPerHour: 5 }): five pass, the sixth is blocked."""
    results = decide_all(_swaps("swap-count", [10_000] * 6, spacing_s=600))
    assert [r.verdict for r in results] == [Verdict.ALLOW] * 5 + [Verdict.BLOCK]
    assert all("ACTION_VELOCITY_LIMIT" not in _points(list(r.reasons)) for r in results[:5])
    sixth = results[-1]
    assert sixth.band is RiskBand.LOW
    assert sixth.features["tx_crypto_swap.count.1h"] == 6
    limit = sixth.reasons[-1]
    assert (limit.code, limit.points) == ("ACTION_VELOCITY_LIMIT", 0)
    assert limit.detail == "6 CRYPTO_SWAP in 1h (limit 5)"


def test_crypto_swap_volume_over_fifty_thousand_reais_in_an_hour_is_blocked() -> None:
    """velocityCheckMiddleware({ volumePerHour: 50000 }), in reais: R$ 50.000 passes, more
    is blocked."""
    results = decide_all(_swaps("swap-volume", [2_500_000, 2_500_000, 100], spacing_s=600))
    assert [r.verdict for r in results] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.BLOCK]
    assert results[1].features["tx_crypto_swap.amount_cents.1h"] == 5_000_000
    last = results[-1]
    assert last.band is RiskBand.LOW
    assert last.reasons[-1].code == "ACTION_VELOCITY_LIMIT"
    assert "of CRYPTO_SWAP in 1h (limit R$" in last.reasons[-1].detail


def test_crypto_swaps_older_than_the_hour_do_not_count() -> None:
    results = decide_all(_swaps("swap-old", [10_000] * 7, spacing_s=13 * 60))
    assert [r.verdict for r in results] == [Verdict.ALLOW] * 7
    assert [r.features["tx_crypto_swap.count.1h"] for r in results] == [1, 2, 3, 4, 5, 5, 5]


def test_other_transaction_types_do_not_count_toward_the_swap_limit() -> None:
    kinds = ["PIX_TRANSFER", "CRYPTO_SWAP"] * 5
    events = [
        _tx(
            user_id="swap-mixed",
            tx_type=kind,
            amount_cents=10_000 + n,
            occurred_at=WEEKDAY_AFTERNOON + timedelta(seconds=n * 330),
        )
        for n, kind in enumerate(kinds)
    ]
    results = decide_all(events)
    assert [r.verdict for r in results] == [Verdict.ALLOW] * 10
    assert results[-1].features["tx.count.1h"] == 10
    assert results[-1].features["tx_crypto_swap.count.1h"] == 5
    # Types without a velocity option record and read nothing more.
    assert not any(name.startswith("tx_") for name in results[-2].features)


def test_types_without_a_velocity_option_keep_the_state_small() -> None:
    rules = load_rules()
    pix, swap = VelocityState(), VelocityState()
    for n in range(3):
        at = WEEKDAY_AFTERNOON + timedelta(seconds=n * 60)
        decide_event(pix, _tx(user_id="small-pix", occurred_at=at), rules)
        decide_event(swap, _tx(user_id="small-swap", tx_type="CRYPTO_SWAP", occurred_at=at), rules)
    assert pix.bucket_count() == 3  # "tx" only
    assert swap.bucket_count() == 6  # "tx" and "tx_crypto_swap"


def test_redelivered_crypto_swap_counts_once() -> None:
    """A re-delivery (before and after the state is written and read back) is decided as
    first time and not counted again: the fifth swap still passes."""
    rules = load_rules()
    first, second, third, fourth, fifth = _swaps("swap-dup", [10_000] * 5, spacing_s=60)
    state = VelocityState()
    decided = [decide_event(state, event, rules).assessment for event in (first, second, third)]
    decided.append(decide_event(state, fourth, rules).assessment)
    again = decide_event(state, fourth, rules).assessment
    state = VelocityState.from_bytes(state.to_bytes())
    restored = decide_event(state, fourth, rules).assessment
    assert decided[-1].features["tx_crypto_swap.count.1h"] == 4
    assert again == decided[-1] and restored == decided[-1]
    last = decide_event(state, fifth, rules).assessment
    assert last.features["tx_crypto_swap.count.1h"] == 5
    assert last.verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    ("shipped", "changed", "error"),
    [
        ('hour_window = "1h"\ntransactions', 'hour_window = "90m"\ntransactions', r"90m"),
        ("transactions_per_hour = 5\n", "transactions_per_hour = 0\n", r"transactions_per_hour"),
        ("volume_per_hour_cents = 5000000", "volume_per_hour_cents = -1", r"volume_per_hour"),
    ],
)
def test_action_velocity_options_are_validated(shipped: str, changed: str, error: str) -> None:
    text = default_rules_path().read_text()
    section = text.index("[capypay.actions.CRYPTO_SWAP.velocity]")
    assert shipped in text[section:]
    bad = text[:section] + text[section:].replace(shipped, changed, 1)
    with pytest.raises(RulesError, match=error):
        parse_rules(bad, "bad.toml")


def test_login_at_night_from_a_new_device() -> None:
    known = factories.login(
        user_id="night",
        success=True,
        device_fingerprint="fp-a",
        occurred_at=WEEKDAY_AFTERNOON - timedelta(days=3),
    )
    night = factories.login(
        user_id="night",
        success=True,
        device_fingerprint="fp-b",
        occurred_at=WEEKDAY_AFTERNOON.replace(hour=5),
    )
    points = _points(list(decide_all([known, night])[1].reasons))
    assert points == {"BEHAVIOR_UNUSUAL_HOUR": 3, "BEHAVIOR_NEW_DEVICE": 4, "BEHAVIORAL_CAP": -2}


def test_login_uses_geo_and_behaviour() -> None:
    login = factories.login(network_flags=["TOR"], occurred_at=WEEKDAY_AFTERNOON)
    assert _points(login_reasons(login, {}, SEED_RULES, NO_HITS)) == {"GEO_TOR_VPN": 10}
    assert decide(login).verdict is Verdict.ALLOW


def test_impossible_travel_from_the_last_known_place() -> None:
    sao_paulo = _tx(user_id="trav", lat=-23.55, lon=-46.63, occurred_at=WEEKDAY_AFTERNOON)
    lisbon = _tx(
        user_id="trav",
        lat=38.72,
        lon=-9.14,
        country="PT",
        occurred_at=WEEKDAY_AFTERNOON + timedelta(hours=2),
    )
    rio_by_car = _tx(
        user_id="car", lat=-22.91, lon=-43.17, occurred_at=WEEKDAY_AFTERNOON + timedelta(hours=6)
    )
    results = decide_all(
        [
            sao_paulo,
            lisbon,
            _tx(user_id="car", lat=-23.55, lon=-46.63, occurred_at=WEEKDAY_AFTERNOON),
            rio_by_car,
        ]
    )
    travel = results[1]
    assert travel.features["travel.km"] > 7_000 and travel.features["travel.kmh"] > 3_000
    assert _points(list(travel.reasons))["GEO_IMPOSSIBLE_TRAVEL"] == 10
    assert "GEO_IMPOSSIBLE_TRAVEL" not in _points(list(results[3].reasons))
    assert results[3].features["travel.km"] == 361


def test_no_place_no_travel_reason() -> None:
    result = decide_all(
        [
            _tx(user_id="noplace", lat=None, lon=None),
            _tx(
                user_id="noplace",
                lat=None,
                lon=None,
                occurred_at=WEEKDAY_AFTERNOON + timedelta(minutes=1),
            ),
        ]
    )[1]
    assert (result.features["travel.km"], result.features["travel.kmh"]) == (-1, -1)


def test_country_hopping_three_countries_in_a_day() -> None:
    hops = [
        _tx(
            user_id="hop",
            country=c,
            lat=None,
            lon=None,
            occurred_at=WEEKDAY_AFTERNOON + timedelta(hours=n),
        )
        for n, c in enumerate(["BR", "AR", "UY"])
    ]
    results = decide_all(hops)
    assert "GEO_COUNTRY_HOPPING" not in _points(list(results[1].reasons))
    assert _points(list(results[2].reasons))["GEO_COUNTRY_HOPPING"] == 5


def _spread(user: str, amounts: list[int], spacing: timedelta) -> list[factories.TransactionEvent]:
    return [
        _tx(user_id=user, amount_cents=amount, occurred_at=WEEKDAY_AFTERNOON + n * spacing)
        for n, amount in enumerate(amounts)
    ]


def test_repeated_amount_fires_on_the_third_equal_amount_within_the_day() -> None:
    results = decide_all(_spread("rep", [77_700, 77_700, 12_300, 77_700], timedelta(hours=2)))
    fired = ["AMOUNT_REPEATED" in _points(list(r.reasons)) for r in results]
    assert fired == [False, False, False, True]
    assert _points(list(results[3].reasons))["AMOUNT_REPEATED"] == 3
    assert results[3].features["tx.same_amount"] == 3


def test_repeated_amount_forgets_what_left_the_window() -> None:
    results = decide_all(_spread("rep-old", [77_700] * 3, timedelta(hours=13)))
    assert "AMOUNT_REPEATED" not in _points(list(results[2].reasons))


def test_structuring_splits_below_the_alert_that_add_up_to_it() -> None:
    """Three R$ 20.000 transfers in a day (each under the R$ 50.000 alert): +5."""
    results = decide_all(_spread("split", [2_000_000, 2_000_001, 2_000_002], timedelta(hours=1)))
    assert "AMOUNT_STRUCTURING" not in _points(list(results[1].reasons))
    last = results[2]
    assert _points(list(last.reasons))["AMOUNT_STRUCTURING"] == 5
    assert "3 transactions below the R$ 50.000,00 alert in 24h add up to R$ 60.000,03" in next(
        r.detail for r in last.reasons if r.code == "AMOUNT_STRUCTURING"
    )


@pytest.mark.parametrize(
    "amounts",
    [
        [1_200_000, 1_200_001, 1_200_002],  # three splits, but they do not reach the alert
        [900_000] * 3 + [900_001] * 4,  # each under 20% of the alert: not a split of it
    ],
)
def test_no_structuring_without_splits_that_reach_the_alert(amounts: list[int]) -> None:
    results = decide_all(_spread("nosplit", amounts, timedelta(minutes=30)))
    assert all("AMOUNT_STRUCTURING" not in _points(list(r.reasons)) for r in results)


def test_daily_volume_alert_at_two_hundred_thousand() -> None:
    results = decide_all(_spread("whale", [4_500_000] * 5, timedelta(hours=1)))
    fired = ["AMOUNT_DAILY_VOLUME" in _points(list(r.reasons)) for r in results]
    assert fired == [False, False, False, False, True]


def _habit(user: str, days: int) -> list[factories.TransactionEvent]:
    """One transaction a day at 15h Brasília time, ending the day before WEEKDAY_AFTERNOON."""
    return [
        _tx(
            user_id=user, amount_cents=10_000 + d, occurred_at=WEEKDAY_AFTERNOON - timedelta(days=d)
        )
        for d in range(days, 0, -1)
    ]


@pytest.mark.parametrize(
    ("days", "hours_later", "fires"),
    [
        (10, 7, True),  # 22h, for a user who always pays at 15h
        (10, 1, False),  # 16h: within the one-hour tolerance
        (10, -1, False),
        (9, 7, False),  # not enough history to have usual hours
    ],
)
def test_unusual_hour_for_the_user(days: int, hours_later: int, fires: bool) -> None:
    odd = _tx(user_id="habit", occurred_at=WEEKDAY_AFTERNOON + timedelta(hours=hours_later))
    last = decide_all([*_habit("habit", days), odd])[-1]
    assert ("BEHAVIOR_UNUSUAL_HOUR" in _points(list(last.reasons))) is fires
    assert last.features["tx.hour_history"] == days


def test_usual_hours_wrap_around_midnight() -> None:
    """23h and 0h are one hour apart on the clock."""
    late = WEEKDAY_AFTERNOON.replace(hour=23)
    history = [
        _tx(user_id="owl", amount_cents=10_000 + d, occurred_at=late - timedelta(days=d))
        for d in range(10, 0, -1)
    ]
    midnight = _tx(user_id="owl", occurred_at=late + timedelta(hours=1))
    last = decide_all([*history, midnight])[-1]
    assert last.features["tx.near_hour"] == 10
    assert "BEHAVIOR_UNUSUAL_HOUR" not in _points(list(last.reasons))


def _logins(user: str, outcomes: list[bool], spacing: timedelta) -> list[factories.LoginEvent]:
    return [
        factories.login(
            user_id=user,
            success=ok,
            device_fingerprint="fp",
            network_flags=[],
            occurred_at=WEEKDAY_AFTERNOON + n * spacing,
        )
        for n, ok in enumerate(outcomes)
    ]


def test_failed_logins_beyond_three_in_an_hour_add_five_each_up_to_twenty() -> None:
    results = decide_all(_logins("guess", [False] * 8 + [True], timedelta(minutes=5)))
    points = [_points(list(r.reasons)).get("VELOCITY_LOGIN_FAILURES", 0) for r in results]
    assert points == [0, 0, 0, 5, 10, 15, 20, 20, 20]  # the success after 8 failures too
    assert results[8].verdict is Verdict.ALLOW  # 20 points alone: flagged by reasons, allowed
    assert "8 failed logins in 1h (allowed 3)" in results[8].reasons[0].detail


def test_failed_logins_spread_over_hours_do_not_add_up() -> None:
    results = decide_all(_logins("slow", [False] * 6, timedelta(minutes=25)))
    assert all("VELOCITY_LOGIN_FAILURES" not in _points(list(r.reasons)) for r in results)


def test_more_than_twenty_logins_in_an_hour() -> None:
    results = decide_all(_logins("script", [True] * 22, timedelta(minutes=2)))
    points = [_points(list(r.reasons)).get("VELOCITY_LOGIN_FREQUENCY", 0) for r in results]
    assert points[:20] == [0] * 20 and points[20:] == [2, 4]
