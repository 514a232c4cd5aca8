"""The default profile's combinations of signals (engine.detection), and the seed profile."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.rules import RulesError, load_rules, parse_rules, seed_rules_path
from engine.scoring import Assessment
from schemas.models import InputEvent, TransactionEvent, TransactionType, Verdict
from tests import factories
from tests.factories import SEED_RULES, decide_all, sha

DEFAULT = load_rules()
START = factories.NOW - timedelta(days=20)


def _decide(events: list[InputEvent]) -> list[Assessment]:
    return decide_all(events, DEFAULT)


def _codes(assessment: Assessment) -> list[str]:
    return [r.code for r in assessment.reasons]


def _history(user: str, days: int = 10, **overrides: Any) -> list[InputEvent]:
    """A user's ordinary month: one R$ 100 PIX a day to one of two payees, own phone, BR."""
    return [
        factories.transaction(
            user_id=user,
            amount_cents=10_000,
            counterparty_pix_key_hash=sha(f"payee-{n % 2}"),
            device_id="own-phone",
            network_flags=[],
            occurred_at=START + timedelta(days=n),
            **overrides,
        )
        for n in range(days)
    ]


def _after(user: str, **overrides: Any) -> InputEvent:
    fields: dict[str, Any] = {
        "user_id": user,
        "amount_cents": 10_000,
        "counterparty_pix_key_hash": sha("payee-0"),
        "device_id": "own-phone",
        "network_flags": [],
        "occurred_at": START + timedelta(days=11),
    }
    return factories.transaction(**(fields | overrides))


def test_account_takeover_needs_three_of_four_signals_whatever_the_factor_caps() -> None:
    takeover = _after(
        "ato",
        device_id="new-phone",
        country="RU",
        counterparty_pix_key_hash=sha("mule"),
        amount_cents=500_000,
    )
    *_, seed_verdict = decide_all([*_history("ato"), takeover])
    assert seed_verdict.verdict is Verdict.ALLOW  # the seed's caps keep it below review
    *_, caught = _decide([*_history("ato"), takeover])
    assert "ACCOUNT_TAKEOVER" in _codes(caught) and caught.verdict is not Verdict.ALLOW
    (reason,) = [r for r in caught.reasons if r.code == "ACCOUNT_TAKEOVER"]
    assert "new device" in reason.detail and "4 of 4" in reason.detail
    assert caught.score == min(100, sum(r.points for r in caught.reasons))


@pytest.mark.parametrize(
    "look_alike",
    [
        {"country": "PT"},  # a traveller: own phone, usual payee and amount
        {"device_id": "new-phone"},  # a new phone at home
        {"counterparty_pix_key_hash": sha("new-shop"), "amount_cents": 12_000},
    ],
)
def test_one_or_two_signals_are_not_a_takeover(look_alike: dict[str, Any]) -> None:
    *_, last = _decide([*_history("la"), _after("la", **look_alike)])
    assert "ACCOUNT_TAKEOVER" not in _codes(last) and last.verdict is Verdict.ALLOW


def test_three_signals_without_a_new_device_are_a_traveller_not_a_takeover() -> None:
    """Abroad on their own phone, a PIX to someone new, five times the usual."""
    abroad = {"country": "PT", "counterparty_pix_key_hash": sha("tour"), "amount_cents": 50_000}
    *_, traveller = _decide([*_history("tr"), _after("tr", **abroad)])
    assert "ACCOUNT_TAKEOVER" not in _codes(traveller) and traveller.verdict is Verdict.ALLOW
    at_home = {"counterparty_pix_key_hash": sha("mule"), "amount_cents": 50_000}
    *_, takeover = _decide([*_history("th"), _after("th", device_id="new-phone", **at_home)])
    (reason,) = [r for r in takeover.reasons if r.code == "ACCOUNT_TAKEOVER"]
    assert "3 of 4" in reason.detail and takeover.verdict is not Verdict.ALLOW


def _charges(user: str, amounts: list[int], **fields: Any) -> list[InputEvent]:
    return [
        factories.transaction(
            user_id=user,
            tx_type="CARD_PAYMENT",
            card_id=f"card-{user}",
            amount_cents=amount,
            counterparty_pix_key_hash=None,
            merchant_id=f"m-{n}",
            network_flags=[],
            occurred_at=START + timedelta(days=11, seconds=30 * n),
            **fields,
        )
        for n, amount in enumerate(amounts)
    ]


def test_card_testing_flags_a_burst_of_small_charges_and_the_large_one_after() -> None:
    decided = _decide(_charges("ct", [150, 300, 99, 500, 80_000]))
    assert ["CARD_TESTING" in _codes(a) for a in decided] == [False, True, True, True, True]
    assert all(a.verdict is not Verdict.ALLOW for a in decided[1:])


def test_small_pix_to_many_suppliers_are_not_card_testing() -> None:
    """A shop paying suppliers: small transfers to distinct payees are not charges."""
    transfers = [
        event.model_copy(
            update={
                "tx_type": TransactionType.PIX_TRANSFER,
                "counterparty_pix_key_hash": sha(f"supplier-{n}"),
            }
        )
        for n, event in enumerate(_charges("shop", [150, 300, 99, 500, 80_000]))
    ]
    assert not any("CARD_TESTING" in _codes(a) for a in _decide(transfers))


def test_two_coffees_on_the_users_own_phone_are_not_card_testing() -> None:
    coffees = _charges("cf", [800, 650], device_id="own-phone")
    *_, second = _decide([*_history("cf"), *coffees])
    assert "CARD_TESTING" not in _codes(second) and second.verdict is Verdict.ALLOW
    *_, third = _decide(
        [*_history("cf3"), *_charges("cf3", [800, 650, 900], device_id="own-phone")]
    )
    assert "CARD_TESTING" in _codes(third)


def test_transfers_just_under_a_limit_add_up_to_structuring() -> None:
    transfers = [
        factories.transaction(
            user_id="st",
            amount_cents=amount,
            network_flags=[],
            occurred_at=START + timedelta(hours=n),
        )
        for n, amount in enumerate([950_000, 990_000, 4_800_000])
    ]
    first, second, third = _decide(transfers)
    assert _codes(first) == ["AMOUNT_JUST_UNDER_LIMIT"] and first.verdict is Verdict.ALLOW
    assert "STRUCTURING" in _codes(second) and second.verdict is not Verdict.ALLOW
    # R$ 48.000 is just under R$ 50.000: a series of its own, not counted with R$ 10.000's
    assert "AMOUNT_JUST_UNDER_LIMIT" in _codes(third) and "STRUCTURING" not in _codes(third)


def test_a_series_at_80_to_90_percent_of_a_limit_is_structuring_and_below_80_is_not() -> None:
    def series(user: str, amounts: list[int]) -> list[TransactionEvent]:
        return [
            factories.transaction(
                user_id=user,
                amount_cents=amount,
                network_flags=[],
                occurred_at=START + timedelta(hours=3 * n),
            )
            for n, amount in enumerate(amounts)
        ]

    *_, kept_under = _decide(series("st80", [820_000, 870_000, 840_000]))
    assert "STRUCTURING" in _codes(kept_under) and kept_under.verdict is not Verdict.ALLOW
    *_, ordinary = _decide(series("st75", [750_000, 760_000, 740_000]))
    assert not {"STRUCTURING", "AMOUNT_JUST_UNDER_LIMIT"} & set(_codes(ordinary))


def test_tor_alone_and_masked_networks_with_an_unknown_device() -> None:
    tor = factories.transaction(user_id="tor", network_flags=["TOR"])
    assert "NETWORK_TOR_EXIT" in _codes(_decide([tor])[0])
    *_, vpn_user = _decide([*_history("vpn"), _after("vpn", network_flags=["VPN"])])
    assert vpn_user.verdict is Verdict.ALLOW and "NETWORK_MASKED_NEW_DEVICE" not in _codes(vpn_user)
    masked = _after("vpn2", network_flags=["VPN"], device_id="other")
    *_, caught = _decide([*_history("vpn2"), masked])
    assert "NETWORK_MASKED_NEW_DEVICE" in _codes(caught)


def test_failed_logins_from_unknown_devices_and_typos_on_a_known_one() -> None:
    at = START + timedelta(days=1)
    known = factories.login(user_id="lg", success=True, failure_reason=None, occurred_at=START)
    typo = factories.login(
        user_id="lg", device_fingerprint=known.device_fingerprint, occurred_at=at
    )
    stuffed = factories.login(user_id="lg-2", device_fingerprint="bot", occurred_at=at)
    _, typo_decided = _decide([known, typo])
    assert typo_decided.verdict is Verdict.ALLOW
    (stuffing,) = _decide([stuffed])
    assert "LOGIN_FAILED_UNKNOWN_DEVICE" in _codes(stuffing) and stuffing.verdict is Verdict.REVIEW


def test_a_typo_on_a_new_phone_at_home_is_not_stuffing_but_a_script_is() -> None:
    at = START + timedelta(days=1)
    home = {"user_id": "np", "country": "BR", "network_flags": []}
    known = factories.login(success=True, failure_reason=None, occurred_at=START, **home)
    new_phone = factories.login(device_fingerprint="new-phone", occurred_at=at, **home)
    script = factories.login(
        device_fingerprint="new-phone", occurred_at=at, user_agent="python-requests/2.31", **home
    )
    _, typo = _decide([known, new_phone])
    assert typo.verdict is Verdict.ALLOW and "LOGIN_FAILED_UNKNOWN_DEVICE" not in _codes(typo)
    _, scripted = _decide([known, script])
    assert {"LOGIN_SCRIPTED_CLIENT", "LOGIN_FAILED_UNKNOWN_DEVICE"} <= set(_codes(scripted))
    assert scripted.verdict is not Verdict.ALLOW


def test_refunds_in_a_burst_or_after_a_spree_of_gifts_are_reviewed() -> None:
    giver = {"giver_user_id": "sp", "network_flags": []}
    gifts = [  # one a day: no daily limit, no rapid creation
        factories.gift(
            gift_id=f"g{n}",
            amount_cents=5_000,
            occurred_at=START + timedelta(hours=25 * n),
            **giver,
        )
        for n in range(5)
    ]
    refund = factories.gift(
        gift_id="g0",
        event_type="refund_requested",
        amount_cents=5_000,
        occurred_at=START + timedelta(hours=25 * 4 + 1),
        **giver,
    )
    *_, after_spree = _decide([*gifts, refund])
    assert "GIFT_REFUND_AFTER_SPREE" in _codes(after_spree)
    assert after_spree.verdict is Verdict.REVIEW
    *_, after_four = _decide([*gifts[:4], refund])
    assert after_four.verdict is Verdict.ALLOW and not _codes(after_four)


def test_a_refund_outside_the_policy_is_reviewed_not_blocked() -> None:
    refund = factories.gift(
        giver_user_id="rf", event_type="refund_requested", gift_id="g-unknown", network_flags=[]
    )
    (default,) = _decide([refund])
    (seed,) = decide_all([refund])
    assert "GIFT_REFUND_OUTSIDE_POLICY" in _codes(default)
    assert (default.verdict, seed.verdict) == (Verdict.REVIEW, Verdict.BLOCK)


def test_gifts_near_the_per_gift_limit_are_reviewed() -> None:
    near = factories.gift(giver_user_id="nl", amount_cents=95_000, network_flags=[])
    small = factories.gift(giver_user_id="nl2", amount_cents=5_000, network_flags=[])
    assert _decide([near])[0].verdict is Verdict.REVIEW
    assert _decide([small])[0].verdict is Verdict.ALLOW


def _gift_steps(giver: str, cents: list[int], gap: timedelta) -> list[InputEvent]:
    """Each gift created, then paid a minute later; the next created ``gap`` after that."""
    steps: list[InputEvent] = []
    at = START
    for n, amount in enumerate(cents):
        common = {"giver_user_id": giver, "gift_id": f"{giver}-{n}", "amount_cents": amount}
        steps.append(factories.gift(occurred_at=at, network_flags=[], **common))
        at += timedelta(minutes=1)
        steps.append(
            factories.gift(event_type="gift_paid", occurred_at=at, network_flags=[], **common)
        )
        at += gap
    return steps


def test_gifts_adding_up_near_the_daily_limits_are_reviewed_from_the_fourth() -> None:
    """Five gifts of R$ 390, each under every limit: the fourth brings the day to R$ 1.560."""
    verdicts = [a.verdict for a in _decide(_gift_steps("nd", [39_000] * 5, timedelta(minutes=15)))]
    assert verdicts == [Verdict.ALLOW] * 6 + [Verdict.REVIEW] * 4
    *_, fourth = _decide(_gift_steps("nd2", [39_000] * 4, timedelta(minutes=15)))
    assert "GIFT_NEAR_DAILY_LIMIT" in _codes(fourth)
    season = [a.verdict for a in _decide(_gift_steps("fam", [15_000] * 4, timedelta(minutes=15)))]
    assert set(season) == {Verdict.ALLOW}  # four family gifts of usual amounts


def test_the_payments_of_a_rapid_series_of_gifts_are_reviewed_with_their_creations() -> None:
    steps = _decide(_gift_steps("rs", [10_000] * 3, timedelta(seconds=30)))
    assert [_codes(a) for a in steps[4:]] == [
        ["GIFT_RAPID_CREATION"],
        ["GIFT_PAID_IN_RAPID_CREATION"],
    ]
    assert {a.verdict for a in steps[:4]} == {Verdict.ALLOW}
    assert {a.verdict for a in steps[4:]} == {Verdict.REVIEW}


def test_the_third_wrong_code_on_a_gift_is_reviewed_in_the_default_profile() -> None:
    """The seed's +30 leaves it in "Normal"; the default profile asks a person (captcha)."""
    attempts = [
        factories.redemption("g-third", False, occurred_at=START + timedelta(seconds=n))
        for n in range(3)
    ]
    default, seed = _decide(attempts), decide_all(attempts, SEED_RULES)
    assert [a.verdict for a in default] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.REVIEW]
    assert [a.verdict for a in seed] == [Verdict.ALLOW] * 3
    assert ("GIFT_CODE_ATTEMPTS", 50) in [(r.code, r.points) for r in default[2].reasons]


def test_the_seed_profile_extends_the_default_with_no_combinations() -> None:
    assert not SEED_RULES.detection.enabled and DEFAULT.detection.enabled
    assert SEED_RULES.gift.points.refund_outside_policy == 100
    assert SEED_RULES.capypay == DEFAULT.capypay and SEED_RULES.version != DEFAULT.version
    pushed = parse_rules(seed_rules_path().read_text(), "config topic")  # base: shipped rules
    assert pushed == SEED_RULES


@pytest.mark.parametrize(
    ("extends", "error"),
    [
        ('"../rules.toml"', "extends must name a file beside it"),
        ('"missing.toml"', "rules file not found"),
        ("3", "extends must name a file beside it"),
    ],
)
def test_a_bad_extends_is_one_line(tmp_path: Path, extends: str, error: str) -> None:
    with pytest.raises(RulesError, match=error) as refused:
        parse_rules(f"extends = {extends}\n", "profile.toml", tmp_path)
    assert "\n" not in str(refused.value)


def test_a_profile_may_not_extend_one_that_extends(tmp_path: Path) -> None:
    (tmp_path / "middle.toml").write_text('extends = "rules.toml"\n')
    with pytest.raises(RulesError, match="one level only"):
        parse_rules('extends = "middle.toml"\n', "profile.toml", tmp_path)


def test_a_takeover_of_an_account_with_little_history_is_caught_without_the_amount() -> None:
    takeover = _after(
        "ato3", device_id="new-phone", country="RU", counterparty_pix_key_hash=sha("mule")
    )
    *_, caught = _decide([*_history("ato3", days=3), takeover])
    (reason,) = [r for r in caught.reasons if r.code == "ACCOUNT_TAKEOVER"]
    assert "3 of 4" in reason.detail and caught.verdict is not Verdict.ALLOW
    (first,) = _decide([_after("fresh", device_id="new-phone", country="RU")])
    assert "ACCOUNT_TAKEOVER" not in _codes(first)  # no established history: nothing is new
