"""Anonymising-network lists: parsing, lookups, flags added to events, file refresh."""

from __future__ import annotations

import os
from pathlib import Path

from agents.networks import NetworkLists
from engine.list_import import LineError
from engine.networks import NetworkIndex, flagged, parse_ip_ranges, parse_tor_exits
from schemas.models import NetworkFlag
from tests import factories

DATA = Path(__file__).parent.parent / "data"


def test_the_shipped_fixtures_parse_without_errors() -> None:
    tor = list(parse_tor_exits((DATA / "tor_exit_addresses.txt").read_bytes()))
    ranges = list(parse_ip_ranges((DATA / "anonymous_ip_ranges.csv").read_bytes()))
    assert len(tor) == 2 and len(ranges) == 3
    assert not any(isinstance(item, LineError) for item in [*tor, *ranges])


def test_bad_lines_are_named_and_skipped() -> None:
    items = list(parse_ip_ranges(b"10.0.0.0/8,VPN\nnot-a-range\n10.1.0.0/16,TOR\n"))
    errors = [item for item in items if isinstance(item, LineError)]
    assert [(e.line, e.reason.split()[0]) for e in errors] == [(2, "not"), (3, "kind")]
    assert list(parse_tor_exits(b"1.2.3\n")) == [LineError(1, "not an IP address")]


def test_overlapping_and_nested_ranges_are_all_found() -> None:
    index = NetworkIndex.of(
        parse_ip_ranges(b"10.0.0.0/8,HOSTING\n10.1.0.0/16,VPN\n10.2.0.0/16,PROXY\n"),
        parse_tor_exits(b"10.1.2.3\n"),
    )
    assert index.flags_of("10.1.2.3") == {NetworkFlag.HOSTING, NetworkFlag.VPN, NetworkFlag.TOR}
    assert index.flags_of("10.3.0.1") == {NetworkFlag.HOSTING}
    assert index.flags_of("11.0.0.0") == frozenset() and index.flags_of("::1") == frozenset()


def test_an_event_gets_the_listed_flags_once() -> None:
    index = NetworkIndex.of(parse_ip_ranges(b"203.0.113.0/24,VPN\n"))
    event = factories.transaction(ip="203.0.113.7", network_flags=["VPN"])
    assert flagged(event, index) is event
    event = factories.transaction(ip="203.0.113.7", network_flags=["PROXY"])
    assert flagged(event, index).network_flags == [NetworkFlag.PROXY, NetworkFlag.VPN]
    assert flagged(factories.transaction(ip=None), index).ip is None


def test_files_are_read_again_only_when_changed_and_a_missing_one_keeps_the_index(
    tmp_path: Path,
) -> None:
    ranges = tmp_path / "ranges.csv"
    ranges.write_text("203.0.113.0/24,VPN\n")
    lists = NetworkLists(ranges=ranges)
    assert lists.refresh() and lists.index.size == 1
    assert not lists.refresh()  # unchanged
    ranges.write_text("203.0.113.0/24,VPN\n192.0.2.0/24,HOSTING\n")
    os.utime(ranges, (1, 1))  # a new modification time, whatever the clock's resolution
    assert lists.refresh() and lists.index.size == 2
    ranges.unlink()
    assert not lists.refresh() and lists.index.size == 2
