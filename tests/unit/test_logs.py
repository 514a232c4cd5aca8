"""JSON log lines: one object per line, whatever the message or traceback holds."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys

import pytest

from config.settings import load_settings
from streams.logs import JsonFormatter, configure_logging, faust_logging_config


def _record(message: str, exc_info: bool = False) -> logging.LogRecord:
    info = None
    if exc_info:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("atalaia.x", logging.WARNING, __file__, 1, message, (), info)


def test_one_object_per_line_even_with_newlines_and_tracebacks() -> None:
    line = JsonFormatter("worker").format(_record("first\nsecond", exc_info=True))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "first\nsecond" and parsed["level"] == "WARNING"
    assert parsed["service"] == "worker" and parsed["logger"] == "atalaia.x"
    assert "ValueError: bad\nvalue" in parsed["exception"]
    assert parsed["time"].endswith("+00:00")


def test_text_keeps_faust_s_format_and_json_gives_it_a_config() -> None:
    assert faust_logging_config(load_settings(), "worker") is None
    config = faust_logging_config(load_settings(log_format="json"), "worker")
    assert config is not None and config["root"]["level"] == "INFO"
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    logging.config.dictConfig(config)
    try:
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)


def test_configured_processes_log_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.excepthook", sys.excepthook)
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    try:
        configure_logging(load_settings(log_format="json", log_level="debug"), "api")
        logging.getLogger("atalaia.api").debug("decided %s in %d ms", "e1", 3)
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)
        logging.captureWarnings(False)
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["message"] == "decided e1 in 3 ms"
