"""What a worker loads when it starts (ADR 0006): not river and scipy, which only building an
online model (learner, replays) or unpickling a received snapshot needs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = {"river", "scipy", "lightgbm"}


def _top_modules_after(code: str) -> set[str]:
    """The top-level packages loaded in a fresh interpreter once ``code`` has run."""
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


def test_a_worker_starts_without_the_model_libraries() -> None:
    assert _top_modules_after("import atalaia.worker").isdisjoint(HEAVY)


def test_building_an_online_model_loads_river() -> None:
    code = (
        "from config.rules import load_rules\n"
        "from engine.learning import OnlineModel\n"
        "OnlineModel(load_rules().model)"
    )
    assert "river" in _top_modules_after(code)
