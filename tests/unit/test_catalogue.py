"""The contract every rule of the catalogue keeps, run over each of them (as river's estimator
checks run over every model): described, documented, pure, reading only what it declares,
within its points, naming no personal data, reachable; and tighteners never loosen. Then the
decisions they make together: only catalogued codes, points adding up to the score, one-line
details without personal data, the same reasons when the stream is decided again.

The facts they run on: every event of a generated scenario stream (both profiles) with the
features the engine gave it, and a hand-made example for each code the stream never fires.
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from atalaia.cli import main
from config.rules import LiveRules, RuleSet, default_rules_path, load_rules, seed_rules_path
from engine.capypay import fraud_block_hits
from engine.catalogue import RULES, SECTIONS_OF, TIGHTENERS, TIGHTENERS_OF, points_of
from engine.evaluators import Facts, Rule, Tightener, Verdicts
from engine.features import record_and_read
from engine.lists import judge_hits
from engine.model_inputs import ModelScore
from engine.replay import Replay
from engine.scenarios import SCENARIO_HASH_KEY, generate, listed_entries, listed_rows
from engine.scoring import MAX_SCORE, Assessment, assess
from engine.velocity import VelocityState
from schemas.models import EVENT_KIND_OF, EventKind, InputEvent, RiskBand, Verdict
from streams.views import default_list_view
from tests import factories
from tests.factories import SEED_RULES

DEFAULT = load_rules()
PROFILES = {"default": DEFAULT, "seed": SEED_RULES}
DOCS = Path(__file__).parents[2] / "docs"
USERS = 100
"""Ordinary users of the generated scenario stream (~8,000 events with its episodes)."""
_STRICTNESS = [Verdict.ALLOW, Verdict.REVIEW, Verdict.BLOCK]
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
_NEW_DAY = {"tx.hour_history": 0}  # no usual hours yet: nothing else fires by accident


def _judged(event: InputEvent, features: dict[str, int], rules: RuleSet) -> Any:
    kind = EVENT_KIND_OF[type(event)]
    blocks = () if kind is EventKind.GIFT else fraud_block_hits(features, rules.capypay)
    return judge_hits(features, rules.lists, blocks)


def _facts(
    event: InputEvent,
    features: dict[str, int],
    rules: RuleSet = DEFAULT,
    model: tuple[ModelScore, str] | None = None,
) -> Facts:
    return Facts(event, features, rules, _judged(event, features, rules), model)


_READY = ModelScore(0.9, 0.1, 0.5, True, (("amount_log", 1.2),))
_COLD = ModelScore(0.2, 0.9, 0.5, False, ())
_SWAP = {"tx_type": "CRYPTO_SWAP", "network_flags": []}
_BLOCK = "list.block.user.HIGH.manual.u***1"
_ALLOW = "list.allow.user.LOW.manual.u***1"
_BR_AFTERNOON = factories.NOW.replace(hour=18)  # 15h in Brasília

EXAMPLES: dict[str, tuple[InputEvent, dict[str, int], RuleSet, tuple[ModelScore, str] | None]] = {
    "WHITELIST_OVERRIDE": (factories.transaction(), {_BLOCK: 1, _ALLOW: 1}, DEFAULT, None),
    "BLACKLIST_FRAUD_BLOCK": (factories.transaction(), {"subject.blocked": 1}, DEFAULT, None),
    "VELOCITY_LOGIN_FAILURES": (factories.login(), {"login_failed.count.1h": 6}, DEFAULT, None),
    "VELOCITY_LOGIN_FREQUENCY": (
        factories.login(success=True, failure_reason=None),
        {"login_ok.count.1h": 25},
        DEFAULT,
        None,
    ),
    "AMOUNT_HIGH_VALUE": (factories.transaction(amount_cents=6_000_000), {}, DEFAULT, None),
    "AMOUNT_ROUND": (factories.transaction(amount_cents=1_000_000), {}, DEFAULT, None),
    "AMOUNT_REPEATED": (factories.transaction(), {"tx.same_amount": 3}, DEFAULT, None),
    "GEO_HIGH_RISK_COUNTRY": (factories.transaction(country="KP"), {}, DEFAULT, None),
    "GEO_PROXY": (factories.transaction(network_flags=["PROXY"]), {}, DEFAULT, None),
    "GEO_COUNTRY_HOPPING": (factories.transaction(), {"tx.countries.24h": 3}, DEFAULT, None),
    "GIFT_AMOUNT_OVER_LIMIT": (factories.gift(amount_cents=150_000), {}, DEFAULT, None),
    "GIFT_FAILED_PAYMENTS_LIMIT": (
        factories.gift(),
        {"payment_failed.count.24h": 3},
        DEFAULT,
        None,
    ),
    "GIFT_PIX_FAILED": (factories.gift(event_type="payment_failed"), {}, DEFAULT, None),
    "GIFT_CODE_ATTEMPTS_EXCEEDED": (
        factories.redemption("g-1", correct=False),
        {"redeem_failed.count.30d": 6},
        DEFAULT,
        None,
    ),
    "GIFT_REFUND_AFTER_REDEMPTION": (
        factories.gift(event_type="refund_requested"),
        {"refund.gift_redeemed": 1, "refund.gift_in_policy": 1},
        DEFAULT,
        None,
    ),
    "GIFT_SUSPICIOUS_IP": (factories.gift(network_flags=["TOR"]), {}, DEFAULT, None),
    "MODEL_FRAUD_PROBABILITY": (factories.transaction(), {}, DEFAULT, (_READY, "online-1")),
    "MODEL_ANOMALY": (factories.transaction(), {}, DEFAULT, (_COLD, "online-1")),
    "EVENT_CLOCK_SKEW": (factories.transaction(), {"event.clock_skew_s": 400}, DEFAULT, None),
    "ACTION_BLOCK_ON_MEDIUM_RISK": (
        factories.transaction(tx_type="CRYPTO_SWAP", network_flags=["TOR"]),
        {},
        DEFAULT,
        None,
    ),
    "ACTION_VELOCITY_LIMIT": (
        factories.transaction(**_SWAP, occurred_at=_BR_AFTERNOON),
        {**_NEW_DAY, "tx_crypto_swap.count.1h": 6, "tx_crypto_swap.amount_cents.1h": 60_000},
        DEFAULT,
        None,
    ),
    "ACTION_HIGH_VALUE_REVIEW": (
        factories.transaction(**_SWAP, amount_cents=10_000_001, occurred_at=_BR_AFTERNOON),
        {**_NEW_DAY, "tx_crypto_swap.count.1h": 1, "tx_crypto_swap.amount_cents.1h": 1},
        SEED_RULES,
        None,
    ),
    "ACTION_MANUAL_REVIEW_REQUIRED": (
        factories.transaction(**_SWAP, amount_cents=10_000_001, occurred_at=_BR_AFTERNOON),
        {**_NEW_DAY, "tx_crypto_swap.count.1h": 1, "tx_crypto_swap.amount_cents.1h": 1},
        SEED_RULES,
        None,
    ),
    "ACCOUNT_FROZEN": (factories.login(), {"account.frozen": 1}, DEFAULT, None),
}


@cache
def _stream() -> tuple[InputEvent, ...]:
    return tuple(item.event for item in generate(7, USERS))


def _replay(rules: RuleSet) -> list[tuple[InputEvent, Assessment]]:
    """The scenario stream decided in order, as a worker decides it, with its listed users."""
    stream = _stream()
    lists = default_list_view(SCENARIO_HASH_KEY)
    for entry in listed_entries(SCENARIO_HASH_KEY, USERS, stream[0].occurred_at):
        lists.apply(entry)
    replay = Replay(rules, SCENARIO_HASH_KEY, lists, learn=False)
    return [(r.event, r.outcome.assessment) for r in replay.run(stream, [])]


@cache
def decided() -> dict[str, list[tuple[InputEvent, Assessment]]]:
    return {name: _replay(rules) for name, rules in PROFILES.items()}


@cache
def corpus() -> tuple[Facts, ...]:
    """Every event of the scenario stream, decided on each profile, with its features; then
    the examples."""
    facts = [
        _facts(event, dict(assessed.features), PROFILES[name])
        for name, decisions in decided().items()
        for event, assessed in decisions
    ]
    facts += [_facts(*_example(code)) for code in EXAMPLES]
    return tuple(facts)


def _example(
    code: str,
) -> tuple[InputEvent, dict[str, int], RuleSet, tuple[ModelScore, str] | None]:
    """An example's event with the features the engine gives it on a new subject, and the
    example's values on top."""
    event, values, rules, model = EXAMPLES[code]
    return event, {**record_and_read(VelocityState(), event, rules), **values}, rules, model


def _of_kinds(kinds: frozenset[EventKind]) -> list[Facts]:
    return [f for f in corpus() if EVENT_KIND_OF[type(f.event)] in kinds]


def _declared(names: tuple[str, ...], features: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in features.items() if any(fnmatch.fnmatchcase(k, n) for n in names)}


def _personal_data(event: InputEvent) -> list[str]:
    """The raw values a reason must never show: IP, e-mail, phone, document, user agent."""
    values = [getattr(event, name, None) for name in ("ip", "user_agent")]
    hashes = [getattr(event, name, None) for name in ("email_hash", "phone_hash", "document_hash")]
    return [str(v) for v in [*values, *hashes] if v]


def _strictness(verdict: Verdict) -> int:
    return _STRICTNESS.index(verdict)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_a_rule_says_what_it_is(rule: Rule) -> None:
    assert _CODE.match(rule.code) and rule.when.strip() and rule.seed.strip() and rule.kinds
    for rules in PROFILES.values():
        points = points_of(rule.points, rules) or 0
        assert isinstance(points, int) and 0 <= points <= 100
    # It is evaluated on exactly the kinds it declares.
    evaluated = {
        kind for kind, sections in SECTIONS_OF.items() for s in sections if rule in s.rules
    }
    assert evaluated == set(rule.kinds)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_a_rule_is_pure_reads_only_what_it_declares_and_stays_within_its_points(
    rule: Rule,
) -> None:
    fired = 0
    for facts in _of_kinds(rule.kinds):
        before = dict(facts.features)
        result = rule.evaluate(facts)
        assert rule.evaluate(facts) == result and facts.features == before
        if result is None:
            continue
        fired += 1
        points, detail = result
        ceiling = points_of(rule.points, facts.rules) or 0
        assert 0 <= points <= ceiling, (rule.code, points, ceiling)
        assert detail.strip() and not any(v in detail for v in _personal_data(facts.event))
        only_declared = _declared(rule.reads, facts.features)
        narrowed = Facts(facts.event, only_declared, facts.rules, facts.judged, facts.model)
        assert rule.evaluate(narrowed) == result, f"{rule.code} reads an undeclared feature"
    assert fired, f"{rule.code} never fires on the corpus"


@pytest.mark.parametrize("tightener", TIGHTENERS, ids=lambda t: t.code)
def test_a_tightener_never_loosens_a_verdict_and_says_why(tightener: Tightener) -> None:
    assert _CODE.match(tightener.code) and tightener.when.strip() and tightener.seed.strip()
    evaluated = {kind for kind, tighteners in TIGHTENERS_OF.items() if tightener in tighteners}
    assert evaluated == set(tightener.kinds)
    acted = 0
    for facts in _of_kinds(tightener.kinds):
        for band in RiskBand:
            for verdict in Verdict:
                so_far = Verdicts(band, verdict)
                result = tightener.evaluate(facts, so_far)
                assert tightener.evaluate(facts, so_far) == result
                if result is None:
                    continue
                acted += 1
                assert _strictness(result[0]) >= _strictness(verdict) and result[1].strip()
                only_declared = _declared(tightener.reads, facts.features)
                narrowed = Facts(facts.event, only_declared, facts.rules, facts.judged, None)
                assert tightener.evaluate(narrowed, so_far) == result
    assert acted, f"{tightener.code} never acts on the corpus"


@pytest.mark.parametrize("code", EXAMPLES)
def test_each_example_fires_its_code_in_a_whole_assessment(code: str) -> None:
    event, features, rules, model = _example(code)
    assessed = assess(event, rules, features, model)
    assert code in [r.code for r in assessed.reasons]
    assert sum(r.points for r in assessed.reasons) == assessed.score


def test_every_code_a_decision_can_carry_is_in_the_catalogue_once() -> None:
    codes = [rule.code for rule in RULES] + [t.code for t in TIGHTENERS]
    assert len(codes) == len(set(codes))
    caps = {"BLACKLIST_CAP", "VELOCITY_CAP", "AMOUNT_CAP", "GEO_CAP", "BEHAVIORAL_CAP"}
    for facts in corpus():
        assessed = assess(facts.event, facts.rules, facts.features, facts.model)
        assert {r.code for r in assessed.reasons} <= set(codes) | caps


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_decision_adds_up_and_its_details_are_one_line_without_personal_data(
    profile: str,
) -> None:
    listed_emails = [row.value for row in listed_rows(USERS)]  # shown masked: li***@...
    for event, assessed in decided()[profile]:
        points = sum(r.points for r in assessed.reasons)
        assert assessed.score == max(0, min(MAX_SCORE, points)), event.event_id
        for reason in assessed.reasons:
            assert reason.detail and "\n" not in reason.detail, (event.event_id, reason)
            named = [*_personal_data(event), *listed_emails]
            assert not any(v in reason.detail for v in named), (event.event_id, reason.detail)


def test_the_same_stream_decided_again_gives_the_same_reasons() -> None:
    again = _replay(DEFAULT)
    assert [a.reasons for _, a in again] == [a.reasons for _, a in decided()["default"]]


def test_every_code_is_documented_with_the_module_of_its_evaluator() -> None:
    text = (DOCS / "rules-and-scoring.md").read_text() + (DOCS / "detection.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)`(?: / `[A-Z_]+`)? \|.*\| `(engine/\w+\.py)` \|$", text, re.M)
    module_of = dict(rows)
    for rule in RULES:
        assert rule.code in text, f"{rule.code} is not documented"
        documented = module_of.get(rule.code)
        if documented is not None:
            assert documented == rule.evaluate.__module__.replace(".", "/") + ".py", rule.code
    for tightener in TIGHTENERS:
        assert tightener.code in text, f"{tightener.code} is not documented"


def test_the_listing_shows_every_code_with_the_points_of_the_file_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = {rule.code for rule in RULES} | {t.code for t in TIGHTENERS}
    for path, rules in ((seed_rules_path(), SEED_RULES), (default_rules_path(), DEFAULT)):
        assert main(["config", "rules", "--json", str(path)]) == 0
        listed = json.loads(capsys.readouterr().out)
        rows = {row["code"]: row for row in listed["codes"]}
        assert listed["version"] == rules.version and set(rows) == codes
        refund = rows["GIFT_REFUND_OUTSIDE_POLICY"]
        assert refund["points"] == rules.gift.points.refund_outside_policy
    assert SEED_RULES.gift.points.refund_outside_policy != DEFAULT.gift.points.refund_outside_policy


def test_listing_a_missing_rules_file_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "rules", "/no/such/rules.toml"]) == 2
    assert capsys.readouterr().err == "atalaia: no such file: /no/such/rules.toml\n"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("version = [[[", "is not valid TOML"),  # not TOML at all
        ('version = "x"\n', "Field required"),  # valid TOML, nothing of a rules file
        ("version = 7\n" + "[gift]\n" * 1, "Field required"),  # wrong type, missing rest
        ("a = " + "[" * 5_000 + "]" * 5_000 + "\n", "rules file"),  # deeply nested
        ('version = "' + "x" * 2_000_000 + '"\n', "Field required"),  # huge
    ],
    ids=["not-toml", "empty-rules", "wrong-type", "nested", "huge"],
)
def test_listing_a_hostile_rules_file_ends_in_one_line_and_exit_2(
    content: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content)
    assert main(["config", "rules", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and says in out.err
    assert "Traceback" not in out.err


def test_listing_a_directory_as_rules_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "rules", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"atalaia: no such file: {tmp_path}\n"


def test_a_rules_record_nested_too_deeply_is_refused_not_raised() -> None:
    """The same parser reads what `config push` publishes: a worker keeps its rules."""
    live = LiveRules(DEFAULT)
    applied = live.apply("a = " + "[" * 5_000 + "]" * 5_000 + "\n", "topic")
    assert not applied.applied and applied.error == (
        "rules file topic is not valid TOML: nested too deeply"
    )
    assert live.current is DEFAULT
