"""What personal data looks like in text: e-mails, CPF/CNPJ, phones, IPs, card numbers (pure).

One place for the shapes, used to spot raw personal data where only a hash belongs (a
``*_hash`` field of an input event) and to mask it in free text (``engine.masking``). Shapes
only: a name cannot be told from other words, which is why free text about a data subject is
sealed under the subject's key rather than trusted to a scanner.

>>> pii_kind("maria.silva@example.com"), pii_kind("529.982.247-25"), pii_kind("hello")
('email', 'document', None)
>>> note = "ligar 11 98765-4321, IP 10.0.0.1"
>>> [(kind, note[start:end]) for kind, start, end in find_pii(note)]
[('phone', '11 98765-4321'), ('ip', '10.0.0.1')]
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")),
    ("document", re.compile(r"\b\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}\b|\b\d{3}\.\d{3}\.\d{3}-\d{2}\b")),
    (
        "card",
        re.compile(r"\b\d{4}(?:[ -]\d{4}){2,3}(?:[ -]?\d{1,3})?\b|\b\d{4}[ -]\d{6}[ -]\d{5}\b"),
    ),
    (
        "ip",
        re.compile(
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b|(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
        ),
    ),
    (
        "phone",
        re.compile(r"(?:\+\d{1,3}[\s.-]?)?\(?\b\d{2}\)?[\s.-]?\d{4,5}[\s.-]?\d{4}\b"),
    ),
    ("number", re.compile(r"\b\d{10,19}\b")),
]
"""Searched in this order; a span taken by one shape is not searched again. ``number``:
any bare run of 10-19 digits (a CPF, CNPJ, phone or card written without punctuation)."""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def find_pii(text: str) -> Iterator[tuple[str, int, int]]:
    """The spans of ``text`` shaped like personal data: (kind, start, end), in order."""
    taken: list[tuple[str, int, int]] = []
    for kind, shape in _SHAPES:
        for match in shape.finditer(text):
            start, end = match.span()
            if kind == "ip" and not _is_ip(match.group()):
                continue
            if any(start < other_end and other_start < end for _, other_start, other_end in taken):
                continue
            taken.append((kind, start, end))
    yield from sorted(taken, key=lambda span: span[1])


def pii_kind(value: str) -> str | None:
    """The kind of personal data ``value`` is as a whole (spaces around it aside), if any."""
    value = value.strip()
    for kind, start, end in find_pii(value):
        if start == 0 and end == len(value):
            return kind
    return None
