"""The Decision the engine builds without validating it again is what validation gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.rules import load_rules, seed_rules_path
from engine.admission import subject_of
from engine.decisions import build_decision
from engine.features import record_and_read
from engine.replay import Replay
from engine.scenarios import generate, listed_entries
from engine.scoring import assess
from engine.velocity import VelocityState
from schemas.models import Decision
from streams.views import default_list_view
from tests import factories

KEY = b"decisions"
STREAM = generate(seed=3, users=60, hash_key=KEY)


@pytest.mark.parametrize("rules_path", [None, seed_rules_path()], ids=["default", "seed"])
def test_every_decision_of_a_scenario_stream_is_as_validation_makes_it(
    rules_path: Path | None,
) -> None:
    rules = load_rules(rules_path)
    lists = default_list_view(KEY)
    for entry in listed_entries(KEY, 60, STREAM[0].event.occurred_at):
        lists.apply(entry)
    replay = Replay(rules, KEY, lists, learn=True)
    verdicts = set()
    for replayed in replay.run((item.event for item in STREAM), []):
        decision = replayed.decision
        validated = Decision.model_validate(decision.model_dump())
        assert validated == decision, decision.event_id
        assert [type(v) for v in validated.features.values()] == [
            type(v) for v in decision.features.values()
        ]
        verdicts.add(decision.decision)
    assert len(verdicts) == 3  # ALLOW, REVIEW and BLOCK all built


def test_the_decision_time_is_kept_at_millisecond_precision_in_utc() -> None:
    event = factories.transaction()
    rules = load_rules()
    assessment = assess(event, rules, record_and_read(VelocityState(), event, rules))
    decided = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    decision = build_decision(event, assessment, "v1", decided, decided)
    assert decision.decided_at == datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert decision.subject_id == subject_of(event).id
    assert Decision.model_validate(decision.model_dump()) == decision
