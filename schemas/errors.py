"""Turning pydantic validation errors into one-line, value-free messages."""

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError) -> str:
    """Name each bad field and the rule it broke, without echoing the offending values.

    Values are left out on purpose: inputs may hold personal data, and these messages go to
    logs, the dead-letter topic and the terminal.
    """
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
