"""``atalaia eval scenarios`` through the real pipeline (its own embedded broker and a
worker): every generated event is decided and every behaviour and group is reported.
Detection rates are not asserted here: they belong to the rules, which change."""

from __future__ import annotations

import json

import pytest

from config.settings import Settings
from engine.scenarios import FRAUD_BEHAVIOURS, LOOKALIKES, NORMAL, generate
from tests.integration.helpers import run_atalaia

pytestmark = pytest.mark.integration

USERS = 20


def test_eval_scenarios_decides_every_event_through_the_pipeline(
    engine_settings: Settings,
) -> None:
    done = run_atalaia(engine_settings, "eval", "scenarios", "--users", str(USERS), "--json")

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    stream = generate(7, USERS)
    assert result["mode"] == "through broker and worker"
    assert result["events"] == result["decided"] == len(stream)
    assert result["undecided"] == 0
    rows = {row["group"]: row for row in result["rows"]}
    assert set(rows) >= {*FRAUD_BEHAVIOURS, *LOOKALIKES, NORMAL}
    assert sum(row["events"] for row in rows.values()) == len(stream)
    assert all(0 <= row["caught"] <= row["events"] for row in rows.values())
