"""Turning pydantic validation errors, and failures in general, into value-free messages."""

import re
import traceback
from pathlib import Path

from pydantic import ValidationError

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
UNNAMED = "(a field whose name is not an identifier)"


def _location(part: str | int) -> str:
    """A path component as shown: list positions and identifier-like names as they are; any
    other key (an unknown field can be named anything, personal data included) unnamed."""
    return str(part) if isinstance(part, int) or _FIELD_NAME.match(part) else UNNAMED


def describe_validation_error(exc: ValidationError) -> str:
    """Name each bad field and the rule it broke, without echoing the offending values.

    Values are left out on purpose: inputs may hold personal data, and these messages go to
    logs, the dead-letter topic and the terminal.

    >>> from pydantic import BaseModel, ConfigDict
    >>> class Event(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     amount_cents: int
    >>> try:
    ...     Event.model_validate({"amount_cents": 1, "maria@example.com": 1})
    ... except ValidationError as exc:
    ...     print(describe_validation_error(exc))
    (a field whose name is not an identifier): Extra inputs are not permitted
    """
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(_location(p) for p in error["loc"]) or "record"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def failure_without_values(exc: BaseException) -> str:
    """An exception's class and where it was raised (file, line and function of each frame,
    innermost first), without its message: a bug's message can hold the input's values
    (pydantic's do), and this goes to logs.

    >>> try:
    ...     int("maria@example.com")
    ... except ValueError as exc:
    ...     print(failure_without_values(exc))
    ValueError at <doctest schemas.errors.failure_without_values[0]>:2 <module>
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where}"
