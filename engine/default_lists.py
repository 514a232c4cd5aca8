"""The list entries every deployment starts with (``config/default_lists.toml``)."""

from __future__ import annotations

import tomllib
from datetime import datetime
from importlib import resources

from engine.list_import import LineError, ListRow, read_row


def default_list_rows() -> tuple[datetime, list[ListRow]]:
    """When the defaults were set, and their rows (validated like any import)."""
    text = resources.files("config").joinpath("default_lists.toml").read_text()
    raw = tomllib.loads(text)
    rows = []
    for number, fields in enumerate(raw["entries"], start=1):
        row = read_row(number, fields)
        if isinstance(row, LineError):
            raise ValueError(f"default_lists.toml entry {row.line}: {row.reason}")
        rows.append(row)
    return datetime.fromisoformat(raw["created_at"]), rows
