"""Anonymising-network lists a worker reads from files and reads again when they change.

The deployment downloads the files (TOR exit list, VPN/hosting ranges) on its own schedule;
the worker checks them every ``network_lists_refresh_seconds`` (a timer) and swaps in a new
index when one changed, so no command has to be run for a refresh to reach scoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import faust

from engine.list_import import LineError
from engine.networks import NetworkIndex, parse_ip_ranges, parse_tor_exits

log = logging.getLogger(__name__)


@dataclass
class NetworkLists:
    """The index scoring reads; replaced whole on a refresh, never changed in place."""

    tor_exits: Path | None = None
    ranges: Path | None = None
    index: NetworkIndex = field(default_factory=NetworkIndex)
    _seen: tuple[float | None, float | None] = (None, None)

    def refresh(self) -> bool:
        """Read the files again if either changed since the last read (True: re-read): an
        unchanged file costs a ``stat``, not a read. A missing or unreadable file keeps the
        index in force and says so in the log."""
        try:
            stamps = tuple(None if p is None else p.stat().st_mtime for p in self._paths())
            if stamps == self._seen:
                return False
            tor = self.tor_exits.read_bytes() if self.tor_exits else b""
            ranges = self.ranges.read_bytes() if self.ranges else b""
        except OSError as exc:
            log.warning("network lists not refreshed: %s", exc.strerror or type(exc).__name__)
            return False
        listed = [list(parse_tor_exits(tor)), list(parse_ip_ranges(ranges))]
        skipped = sum(isinstance(item, LineError) for items in listed for item in items)
        self.index = NetworkIndex.of(*listed)
        self._seen = (stamps[0], stamps[1])
        log.info("network lists: %d networks listed, %d lines skipped", self.index.size, skipped)
        return True

    def _paths(self) -> tuple[Path | None, Path | None]:
        return self.tor_exits, self.ranges


def register_network_lists(app: faust.App, lists: NetworkLists, every_s: float) -> None:
    """Read the lists now and again every ``every_s`` (nothing when no file is configured)."""
    if lists.tor_exits is None and lists.ranges is None:
        return
    lists.refresh()

    async def refresh() -> None:
        lists.refresh()

    app.timer(every_s)(refresh)
