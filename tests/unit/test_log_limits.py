"""The limiter of repeated client log lines: first passes, repeats held back per interval,
the next passing line says how many were held."""

from __future__ import annotations

import logging

from streams.log_limits import RepeatLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _line(template: str, *args: object, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, template, args, None)


def test_a_repeated_line_passes_once_per_interval_and_counts_what_it_held_back() -> None:
    clock = _Clock()
    limiter = RepeatLimiter(10.0, clock)
    template = "Unable connect to node with id %s: %s"
    assert limiter.filter(_line(template, 111, "refused"))
    clock.now = 1.0
    held = [limiter.filter(_line(template, 112, "refused")) for _ in range(5)]
    assert held == [False] * 5  # other values, same kind
    clock.now = 10.5
    passing = _line(template, 111, "refused")
    assert limiter.filter(passing)
    assert passing.getMessage() == (
        "Unable connect to node with id 111: refused (and 5 more like it since the last)"
    )
    clock.now = 21.0
    quiet_since = _line(template, 111, "refused")
    assert limiter.filter(quiet_since)
    assert quiet_since.getMessage() == "Unable connect to node with id 111: refused"


def test_kinds_are_limited_apart_by_logger_and_template() -> None:
    limiter = RepeatLimiter(10.0, _Clock())
    assert limiter.filter(_line("Unable to update metadata from %s", [111]))
    assert limiter.filter(_line("Failed fetch messages from %s: %s", 111, "NodeNotReady"))
    assert limiter.filter(_line("Unable to update metadata from %s", [111], name="aiokafka"))
    assert not limiter.filter(_line("Unable to update metadata from %s", [112]))


def test_a_summarising_line_formats_through_the_workers_log_formatter() -> None:
    """Faust's formatter (mode's) wraps arguments that are not a tuple in one; the summary,
    its values already in its text, must still format (once it failed with a traceback)."""
    from mode.utils.logging import ExtensionFormatter

    clock = _Clock()
    limiter = RepeatLimiter(10.0, clock)
    template = "Failed fetch messages from %s: %s (100%% of them)"
    assert limiter.filter(_line(template, 111, "NodeNotReady"))
    assert not limiter.filter(_line(template, 111, "NodeNotReady"))
    clock.now = 11.0
    summary = _line(template, 111, "NodeNotReady")
    assert limiter.filter(summary)
    text = ExtensionFormatter(fmt="%(message)s").format(summary)
    assert text.endswith("111: NodeNotReady (100% of them) (and 1 more like it since the last)")
