"""One contract for every reason any rule, combination or model emits, checked on the
decisions of a labelled scenario stream under both rule profiles: each code is documented,
its points are whole and bounded, its detail is one line that names neither the event's IP
nor a listed e-mail in clear, the points add up to the score, and the same stream decided
again gives the same reasons."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from config.rules import RuleSet, load_rules, seed_rules_path
from engine.replay import Replay
from engine.scenarios import generate, listed_entries, listed_rows
from engine.scoring import MAX_SCORE
from schemas.models import Reason
from streams.views import default_list_view

ROOT = Path(__file__).resolve().parents[2]
KEY = b"contract"
STREAM = generate(seed=5, users=60, hash_key=KEY)
PROFILES = {"default": load_rules(), "seed": load_rules(seed_rules_path())}
IP_OF = {item.event.event_id: item.event.ip for item in STREAM}
LISTED_EMAILS = [row.value for row in listed_rows(60)]


def documented_codes() -> set[str]:
    """Every code the rules and detection documents name (in backticks)."""
    text = "".join(
        (ROOT / "docs" / name).read_text() for name in ("rules-and-scoring.md", "detection.md")
    )
    return set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", text))


def decided(rules: RuleSet) -> list[tuple[str, int, tuple[Reason, ...]]]:
    lists = default_list_view(KEY)
    for entry in listed_entries(KEY, 60, STREAM[0].event.occurred_at):
        lists.apply(entry)
    replay = Replay(rules, KEY, lists, learn=False)
    return [
        (r.event.event_id, r.outcome.assessment.score, r.outcome.assessment.reasons)
        for r in replay.run((item.event for item in STREAM), [])
    ]


@pytest.fixture(scope="module", params=sorted(PROFILES))
def decisions(request: pytest.FixtureRequest) -> list[tuple[str, int, tuple[Reason, ...]]]:
    return decided(PROFILES[request.param])


def test_every_reason_keeps_the_contract(
    decisions: list[tuple[str, int, tuple[Reason, ...]]],
) -> None:
    documented = documented_codes()
    fired: Counter[str] = Counter()
    for event_id, score, reasons in decisions:
        assert score == max(0, min(MAX_SCORE, sum(r.points for r in reasons))), event_id
        for reason in reasons:
            fired[reason.code] += 1
            assert reason.code in documented or reason.code.endswith("_CAP"), reason.code
            assert -MAX_SCORE <= reason.points <= MAX_SCORE, (event_id, reason)
            assert reason.detail and "\n" not in reason.detail, (event_id, reason)
            named = [IP_OF[event_id], *LISTED_EMAILS]  # an e-mail shows masked (li***@...)
            assert not any(v and v in reason.detail for v in named), (event_id, reason.detail)
    assert len(fired) >= 15  # the stream exercises the rules, not one or two of them


def test_the_same_stream_decided_again_gives_the_same_reasons() -> None:
    rules = PROFILES["default"]
    assert decided(rules) == decided(rules)
