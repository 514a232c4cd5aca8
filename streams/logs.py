"""Log lines for people (``log_format = "text"``) or for collectors (``"json"``: one JSON
object per line). Messages are the code's own: they carry ids, counts and reasons, never
personal values (codec errors mask them), and a JSON line adds no request data to them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "service", "message"[, "exception"]}`` on one line:
    newlines inside a message or a traceback are escaped by JSON."""

    def __init__(self, service: str = "atalaia") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def faust_logging_config(settings: Settings, service: str) -> dict[str, Any] | None:
    """The ``logging.config`` dict a Faust worker is given for JSON lines (None: Faust's own
    text format)."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
    }


def configure_logging(settings: Settings, service: str) -> None:
    """Logging of a process that is not a Faust worker (the API, the learner, the feeds and
    anchor services): the configured level and format on stdout; with JSON, uncaught errors
    and warnings become JSON lines too."""
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(service))
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    else:
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    logging.getLogger("atalaia").critical(
        "uncaught %s", kind.__name__, exc_info=(kind, error, trace)
    )
