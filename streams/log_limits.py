"""Repeated log lines of the Kafka client, limited.

While the broker is unreachable aiokafka logs every retry of every connection at ERROR: one
worker wrote ~200 lines a second (measured), enough to fill a disk in a long outage and to
bury every other line. The first line of a kind passes; after it, at most one per interval,
saying how many like it were held back. A kind is the logger and the message template, so
lines that differ only in their values (node id, errno) count as one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

CLIENT_LOGGERS = "aiokafka"


class RepeatLimiter(logging.Filter):
    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        # (logger, template) -> (when one last passed, how many held back since)
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg))
        now = self.clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval_s:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        self._kinds[kind] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{record.getMessage()} (and {last[1]} more like it since the last)"
            # Empty, not None: mode's formatter wraps a non-tuple in a tuple, and formatting
            # the message with (None,) failed with a traceback for every such line.
            record.args = ()
        return True


def limit_client_repeats(interval_s: float) -> None:
    """Put one limiter on every logger of the Kafka client that is loaded (a filter acts on
    the logger a line is written to, not on its parents)."""
    limiter = RepeatLimiter(interval_s)
    names = [CLIENT_LOGGERS] + [
        name for name in logging.root.manager.loggerDict if name.startswith(CLIENT_LOGGERS + ".")
    ]
    for name in names:
        logging.getLogger(name).addFilter(limiter)
