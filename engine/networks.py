"""Anonymising networks from lists (pure): TOR exit nodes and VPN/hosting IP ranges.

Upstream flags say what the producer knew about an IP; these lists let the engine flag it
itself. A deployment downloads the files (a TOR bulk exit list, ranges of VPN and hosting
providers as CIDR) and points the workers at them; each worker reads them again when they
change (``agents.networks``). An event whose IP falls in a listed network is scored as if
upstream had flagged it (``flagged``), so every rule on network flags reads both.

>>> index = NetworkIndex.of(parse_tor_exits(b"ExitAddress 198.51.100.9 2026-11-30 10:00:00\\n"),
...                         parse_ip_ranges(b"203.0.113.0/24,VPN\\n2001:db8:5::/48,HOSTING\\n"))
>>> index.flags_of("203.0.113.77"), index.flags_of("198.51.100.9"), index.flags_of("8.8.8.8")
(frozenset({<NetworkFlag.VPN: 'VPN'>}), frozenset({<NetworkFlag.TOR: 'TOR'>}), frozenset())
>>> index.flags_of("2001:db8:5::1"), index.flags_of("not an ip")
(frozenset({<NetworkFlag.HOSTING: 'HOSTING'>}), frozenset())
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from engine.list_import import LineError
from schemas.models import InputEvent, NetworkFlag

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RANGE_FLAGS = frozenset({NetworkFlag.VPN, NetworkFlag.PROXY, NetworkFlag.HOSTING})
"""What a range file may call its networks (TOR exits come from their own list)."""


@dataclass(frozen=True, slots=True)
class ListedNetwork:
    network: IpNetwork
    flag: NetworkFlag


def _lines(data: bytes) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield number, line


def parse_tor_exits(data: bytes) -> Iterator[ListedNetwork | LineError]:
    """The TOR Project's exit lists: the bulk list (one address a line) or the exit-address
    document (``ExitAddress <ip> <date> <time>`` lines; its other lines are skipped)."""
    for number, line in _lines(data):
        words = line.split()
        if words[0] == "ExitAddress" and len(words) >= 2:
            text = words[1]
        elif len(words) == 1:
            text = words[0]
        else:
            continue  # ExitNode, Published, LastStatus lines of the exit-address document
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            yield LineError(number, "not an IP address")
            continue
        yield ListedNetwork(ipaddress.ip_network(address), NetworkFlag.TOR)


def parse_ip_ranges(data: bytes) -> Iterator[ListedNetwork | LineError]:
    """``<CIDR>[,<VPN|PROXY|HOSTING>]`` a line (VPN when the kind is left out)."""
    for number, line in _lines(data):
        text, _, kind = (part.strip() for part in line.partition(","))
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            yield LineError(number, "not a CIDR range")
            continue
        try:
            flag = NetworkFlag(kind.upper()) if kind else NetworkFlag.VPN
        except ValueError:
            flag = None
        if flag not in RANGE_FLAGS:
            yield LineError(number, f"kind must be one of {', '.join(sorted(RANGE_FLAGS))}")
            continue
        yield ListedNetwork(network, flag)


@dataclass(frozen=True)
class NetworkIndex:
    """Listed networks by IP version, sorted by first address, with the highest last address
    reached up to each: a lookup bisects, then walks back only while some range up to there
    still reaches the address."""

    _starts: dict[int, list[int]] = field(default_factory=dict)
    _ranges: dict[int, list[tuple[int, int, NetworkFlag]]] = field(default_factory=dict)
    _reach: dict[int, list[int]] = field(default_factory=dict)
    size: int = 0

    @classmethod
    def of(cls, *sources: Iterable[ListedNetwork | LineError]) -> NetworkIndex:
        """The index of every listed network in ``sources`` (their line errors skipped)."""
        ranges: dict[int, list[tuple[int, int, NetworkFlag]]] = {4: [], 6: []}
        for source in sources:
            for item in source:
                if isinstance(item, ListedNetwork):
                    first = int(item.network.network_address)
                    last = int(item.network.broadcast_address)
                    ranges[item.network.version].append((first, last, item.flag))
        reach: dict[int, list[int]] = {}
        for version, listed in ranges.items():
            listed.sort()
            reach[version] = list(accumulate((r[1] for r in listed), max))
        starts = {version: [r[0] for r in listed] for version, listed in ranges.items()}
        return cls(starts, ranges, reach, sum(len(listed) for listed in ranges.values()))

    def flags_of(self, ip: str) -> frozenset[NetworkFlag]:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return frozenset()
        version, value = address.version, int(address)
        if not self._ranges.get(version):
            return frozenset()
        listed, reach = self._ranges[version], self._reach[version]
        found = set()
        position = bisect_right(self._starts[version], value) - 1
        while position >= 0 and reach[position] >= value:
            first, last, flag = listed[position]
            if first <= value <= last:
                found.add(flag)
            position -= 1
        return frozenset(found)


def flagged(event: InputEvent, index: NetworkIndex) -> InputEvent:
    """``event`` with the flags of the listed networks its IP is in added to its own."""
    if event.ip is None or not index.size:
        return event
    listed = index.flags_of(event.ip) - set(event.network_flags)
    if not listed:
        return event
    flags = [*event.network_flags, *sorted(listed)]
    return event.model_copy(update={"network_flags": flags})
