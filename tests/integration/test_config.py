"""Rules change at runtime through the config topic, without restarting the worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess, settings_env
from config.rules import default_rules_path, load_rules
from config.settings import Settings
from schemas.models import AuditRecord, Decision, Verdict
from streams.live_config import RULES_KEY, StartingRules, latest_rules
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, read_all, send_events

pytestmark = pytest.mark.integration


def _push(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atalaia", "config", "push", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **settings_env(settings)},
    )


def _decide(settings: Settings, events: list) -> dict[str, Decision]:
    topics = Topics(settings.topic_prefix)
    asyncio.run(send_events(settings.bootstrap_servers, topics, events))
    out = asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in events}))
    return {d.event_id: d for _, d in out.decisions}


def _wait_for_version(settings: Settings, version: str, giver: str) -> None:
    """Probe with harmless events until decisions name ``version`` (bounded)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = factories.gift(event_type="gift_paid", giver_user_id=giver)
        if _decide(settings, [probe])[probe.event_id].rule_version == version:
            return
        time.sleep(0.5)
    raise AssertionError(f"rules version {version} never came into force")


def test_pushed_rules_apply_without_restart_and_bad_ones_are_rejected(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = start_worker()
    shipped = load_rules()
    start = factories.NOW - timedelta(hours=2)
    gifts = [
        factories.gift(
            giver_user_id="hot", amount_cents=1_000, occurred_at=start + timedelta(minutes=10 * n)
        )
        for n in range(3)
    ]
    before = _decide(engine_settings, gifts)
    assert {d.rule_version for d in before.values()} == {shipped.version}
    assert before[gifts[2].event_id].decision is Verdict.ALLOW  # 3 gifts/day: under 5

    stricter = tmp_path / "rules.toml"
    stricter.write_text(
        default_rules_path()
        .read_text()
        .replace(f'version = "{shipped.version}"', 'version = "hot-1"')
        .replace("max_gifts_per_day = 5", "max_gifts_per_day = 2")
    )
    pushed = _push(engine_settings, stricter)
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed rules version hot-1" in pushed.stdout
    audited = asyncio.run(
        read_all(
            engine_settings.bootstrap_servers,
            Topics(engine_settings.topic_prefix).audit_intake,
            AuditRecord,
        )
    )
    assert [(r.action, r.details.new_state) for r in audited] == [
        ("config_change", '{"version": "hot-1"}')
    ]
    _wait_for_version(engine_settings, "hot-1", giver="probe")

    more = [
        factories.gift(
            giver_user_id="hot2", amount_cents=1_000, occurred_at=start + timedelta(minutes=10 * n)
        )
        for n in range(3)
    ]
    after = _decide(engine_settings, more)
    assert [after[g.event_id].decision for g in more] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.BLOCK,
    ]
    assert after[more[2].event_id].reasons[0].detail == "3 gifts created in 24h, limit 2"

    # Invalid rules: refused by the CLI, and dead-lettered by the worker if sent anyway.
    broken = tmp_path / "broken.toml"
    broken.write_text(
        stricter.read_text()
        .replace('version = "hot-1"', 'version = "hot-2"')
        .replace("max_gifts_per_day = 2", "max_gifts_per_day = -1")
    )
    refused = _push(engine_settings, broken)
    assert refused.returncode == 2
    assert "gift.limits.max_gifts_per_day: Input should be greater than 0" in refused.stderr
    # The same version with other content: refused too, nothing published.
    same_version = tmp_path / "same-version.toml"
    same_version.write_text(
        stricter.read_text().replace("max_gifts_per_day = 2", "max_gifts_per_day = 4")
    )
    conflict = _push(engine_settings, same_version)
    assert conflict.returncode == 2
    assert conflict.stderr == (
        "atalaia: rules version 'hot-1' is already published with other content: bump the version\n"
    )
    assert _push(engine_settings, stricter).returncode == 0  # the same content again: fine
    topics = Topics(engine_settings.topic_prefix)
    asyncio.run(
        publish(
            engine_settings.bootstrap_servers,
            [OutRecord(topics.config, RULES_KEY, broken.read_bytes())],
        )
    )
    probe = factories.gift(event_type="gift_paid", giver_user_id="probe-2")
    out = asyncio.run(
        collect(engine_settings.bootstrap_servers, topics, set(), want_dead_letters=1)
    )
    (letter,) = out.dead_letters
    assert letter.error_class == "ConfigRejected"
    assert "max_gifts_per_day: Input should be greater than 0" in letter.error_message
    assert _decide(engine_settings, [probe])[probe.event_id].rule_version == "hot-1"
    assert worker.alive


def test_a_restarted_worker_starts_with_the_latest_pushed_rules(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        default_rules_path()
        .read_text()
        .replace(f'version = "{load_rules().version}"', 'version = "pushed-before-start"')
    )
    assert _push(engine_settings, rules).returncode == 0
    start_worker()
    probe = factories.gift(event_type="gift_paid", giver_user_id="first")
    assert _decide(engine_settings, [probe])[probe.event_id].rule_version == "pushed-before-start"


def test_the_start_up_read_takes_the_last_valid_rules_and_follows_on_past_them(
    engine_settings: Settings,
) -> None:
    """Read to the topic's end as it was, not until a second of silence: the last valid record
    wins over an invalid one after it, and following goes on past every record read."""
    topics = Topics(engine_settings.topic_prefix)
    text = default_rules_path().read_text()
    shipped = load_rules()
    values = [
        text.replace(f'version = "{shipped.version}"', 'version = "first"'),
        text.replace(f'version = "{shipped.version}"', 'version = "second"'),
        "not toml [",
    ]

    async def scenario() -> StartingRules:
        producer = AIOKafkaProducer(bootstrap_servers=engine_settings.bootstrap_servers)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topics.config, value.encode(), key=RULES_KEY)
        finally:
            await producer.stop()
        return await asyncio.wait_for(latest_rules(engine_settings, shipped), 60)

    start = asyncio.run(scenario())
    assert start.rules.version == "second"
    assert sum(start.positions.values()) == len(values)
