"""``atalaia worker``: run the engine's Faust worker until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from agents.worker_app import build_app
from config.rules import RuleSet
from config.settings import Settings
from streams.admin import ensure_topics
from streams.app import run_until_stopped
from streams.live_config import latest_rules


def run_worker(settings: Settings, rules: RuleSet, challenger: RuleSet | None) -> None:
    asyncio.run(ensure_topics(settings))
    start = asyncio.run(latest_rules(settings, rules))
    app = build_app(settings, start, challenger=challenger)
    run_until_stopped(app, settings, "worker")
