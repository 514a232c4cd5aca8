"""Anonymising-network lists read by a real worker from files, and read again on change."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atalaia.supervise import WorkerProcess
from config.settings import Settings
from schemas.models import Decision, TransactionEvent
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, send_events

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent.parent / "data"


def _decided(settings: Settings, event: TransactionEvent) -> Decision:
    topics = Topics(settings.topic_prefix)
    asyncio.run(send_events(settings.bootstrap_servers, topics, [event]))
    out = asyncio.run(collect(settings.bootstrap_servers, topics, {event.event_id}))
    (decision,) = [d for _, d in out.decisions if d.event_id == event.event_id]
    return decision


def _codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_listed_exits_and_ranges_flag_events_and_a_changed_file_is_read_again(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    tor, ranges = tmp_path / "tor.txt", tmp_path / "ranges.csv"
    shutil.copy(DATA / "tor_exit_addresses.txt", tor)
    ranges.write_text("# nothing listed yet\n")
    settings = engine_settings.model_copy(
        update={
            "tor_exit_list": tor,
            "anonymous_ip_ranges": ranges,
            "network_lists_refresh_seconds": 0.5,
        }
    )
    start_worker(settings=settings)

    exit_node = _decided(settings, factories.transaction(ip="198.51.100.23", network_flags=[]))
    assert "NETWORK_TOR_EXIT" in _codes(exit_node) and "GEO_TOR_VPN" in _codes(exit_node)
    plain = _decided(settings, factories.transaction(ip="203.0.113.200", network_flags=[]))
    assert "GEO_TOR_VPN" not in _codes(plain)

    shutil.copy(DATA / "anonymous_ip_ranges.csv", ranges)
    deadline = time.monotonic() + 30
    while True:  # the worker's timer reads the changed file
        vpn = _decided(settings, factories.transaction(ip="203.0.113.200", network_flags=[]))
        if "GEO_TOR_VPN" in _codes(vpn):
            break
        assert time.monotonic() < deadline, "the changed ranges file was not read again"
    hosting = _decided(settings, factories.transaction(ip="192.0.2.10", network_flags=[]))
    assert "NETWORK_TOR_EXIT" not in _codes(hosting)
