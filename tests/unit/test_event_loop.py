"""Faust processes run on uvloop (streams.app.new_app). Checked in a fresh interpreter, as a
worker starts: the event loop policy is process-wide and Faust keeps the first loop it
resolves on a thread, so a check inside the test process would see other tests' loops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKER_AS_STARTED = """
import asyncio
import faust
from config.rules import load_rules
from config.settings import load_settings
from agents.worker_app import build_app
from streams.live_config import StartingRules

asyncio.run(asyncio.sleep(0))  # the worker talks to the broker before it builds its app
app = build_app(load_settings(), StartingRules(load_rules()))
worker = faust.Worker(app, loglevel="warning", redirect_stdouts=False)
print(type(app.loop).__module__, type(worker.loop).__module__)
"""


def test_the_worker_app_and_its_faust_worker_run_on_uvloop(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", WORKER_AS_STARTED],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ATALAIA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["uvloop", "uvloop"]
