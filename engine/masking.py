"""Masks for block/allow-list values shown to people: admin screens, logs, error messages (pure).

Lists hold personal data (LGPD); whoever reads a screen or a log needs to recognise a value
they already know, not learn one. Each mask keeps what the CapyPay ``dataMasking`` policy
keeps (an e-mail's domain, a document's last digits, an IP's first two octets) and never the
whole value: short inputs still come out masked, and unrecognised ones are hidden entirely.

>>> mask_email("usuario@domain.com"), mask_phone("+55 11 98765-1234")
('us***@domain.com', '***-***-1234')
>>> mask_document("529.982.247-25"), mask_ip("192.168.10.20")
('***.***.247-25', '192.168.***.***')
>>> mask_wallet("0x7f367cc41522ce07553e823bf3be79a889debe1b")
'0x7f36...be1b'
>>> mask_value("pix_key", "+5511987654321"), mask_value("no_such_type", "secret")
('***-***-4321', '***')

Free text (a list entry's reason, an evidence reason, an assignee, a user agent) is scanned
and each piece of personal data in it masked by its shape (``schemas.pii``):

>>> mask_text("chargeback: ana@bank.com, CPF 529.982.247-25, tel +55 11 98765-4321")
'chargeback: a***@bank.com, CPF ***.***.247-25, tel ***-***-4321'
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from schemas.pii import find_pii

HIDDEN = "***"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_DOCUMENT_PUNCTUATION = re.compile(r"[.\-/ ]")


def _shown(length: int, wanted: int) -> int:
    """How many characters a mask may show: ``wanted``, but never half the value."""
    return min(wanted, max(length - 1, 0) // 2)


def _tail(value: str, wanted: int) -> str:
    shown = _shown(len(value), wanted)
    return HIDDEN + value[len(value) - shown :]


def _ends(value: str, head: int, tail: int) -> str:
    budget = _shown(len(value), head + tail)
    tail = min(tail, budget)
    head = min(head, budget - tail)
    return f"{value[:head]}...{value[len(value) - tail :]}"


def mask_email(email: str) -> str:
    """``usuario@domain.com`` -> ``us***@domain.com`` (the domain is kept)."""
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return _tail(email.strip(), 4)
    return f"{local[: _shown(len(local), 2)]}{HIDDEN}@{domain}"


def mask_email_domain(domain: str) -> str:
    """``guerrillamail.com`` -> ``gu***.com``: a personal domain can name its owner."""
    label, dot, rest = domain.strip().removeprefix("@").partition(".")
    return f"{label[: _shown(len(label), 2)]}{HIDDEN}{dot}{rest}"


def mask_phone(phone: str) -> str:
    """Any phone spelling -> ``***-***-1234`` (its last four digits)."""
    digits = re.sub(r"\D", "", phone)
    shown = _shown(len(digits), 4)
    return f"{HIDDEN}-{HIDDEN}-{digits[len(digits) - shown :] if shown else '****'}"


def mask_document(document: str) -> str:
    """CPF -> ``***.***.247-25`` (last 5); CNPJ -> ``**.***.***/0001-81`` (last 6).

    >>> mask_document("11.222.333/0001-81"), mask_document("12ABC34501DE35")
    ('**.***.***/0001-81', '**.***.***/01DE-35')
    """
    compact = re.sub(r"[^0-9A-Za-z]", "", document).upper()
    if len(compact) == 11:
        return f"***.***.{compact[6:9]}-{compact[9:]}"
    if len(compact) == 14:
        return f"**.***.***/{compact[8:12]}-{compact[12:]}"
    return _tail(compact, 2)


def mask_ip(ip: str) -> str:
    """IPv4 keeps its first two octets, IPv6 its first two hextets.

    >>> mask_ip("2001:db8::1")
    '2001:db8:***:***:***:***:***:***'
    """
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return _tail(ip.strip(), 4)
    if address.version == 4:
        first, second, *_ = str(address).split(".")
        return f"{first}.{second}.***.***"
    first, second, *_ = (f"{int(hextet, 16):x}" for hextet in address.exploded.split(":"))
    return f"{first}:{second}" + f":{HIDDEN}" * 6


def mask_ip_range(cidr: str) -> str:
    """``185.220.101.0/24`` -> ``185.220.***.***/24``."""
    network, slash, prefix = cidr.strip().partition("/")
    if slash and prefix.isdigit():
        return f"{mask_ip(network)}/{prefix}"
    return mask_ip(cidr)


def mask_wallet(wallet: str) -> str:
    """First six characters (``0x`` included), ``...``, last four."""
    return _ends(wallet.strip(), 6, 4)


def mask_name(name: str) -> str:
    """``João Silva`` -> ``J*** S****``; a one-letter word is hidden whole."""
    words = [word[0] + "*" * (len(word) - 1) if len(word) > 1 else "*" for word in name.split()]
    return " ".join(words) or HIDDEN


def mask_card(card: str) -> str:
    """A card number: its last four digits only (PCI DSS shows no more)."""
    digits = re.sub(r"\D", "", card)
    return f"{HIDDEN}-{HIDDEN}-{HIDDEN}-{digits[-4:] if len(digits) >= 12 else '****'}"


def _mask_digits(number: str) -> str:
    """A bare run of digits: a CPF or CNPJ by its length, else its last four kept."""
    return mask_document(number) if len(number) in (11, 14) else _tail(number, 4)


def mask_text(text: str) -> str:
    """``text`` with every e-mail, CPF/CNPJ, phone, IP and card number in it masked (names
    are not found: free text about a data subject is sealed instead, ``engine.sealing``)."""
    pieces, last = [], 0
    for kind, start, end in find_pii(text):
        pieces += [text[last:start], _TEXT_MASKS[kind](text[start:end])]
        last = end
    return "".join(pieces) + text[last:] if pieces else text


def mask_identifier(identifier: str) -> str:
    """User ids and bank accounts: only the last four characters are kept."""
    return _tail(identifier.strip(), 4)


def mask_pix_key(key: str) -> str:
    """A PIX key masked as what it is: e-mail, phone, CPF/CNPJ or random (EVP) key.

    Told apart by shape, as DICT writes them: a phone key starts with ``+``, so a bare
    11-digit key reads as a CPF (both masks hide the leading digits).

    >>> mask_pix_key("123e4567-e89b-42d3-a456-426614174000")
    '123e...4000'
    """
    value = key.strip()
    if "@" in value:
        return mask_email(value)
    if _UUID.fullmatch(value):
        return _ends(value, 4, 4)
    if not value.startswith("+") and len(_DOCUMENT_PUNCTUATION.sub("", value)) in (11, 14):
        return mask_document(value)
    return mask_phone(value)


_MASKS: dict[str, Callable[[str], str]] = {
    "user": mask_identifier,
    "wallet": mask_wallet,
    "email": mask_email,
    "email_domain": mask_email_domain,
    "ip": mask_ip,
    "ip_range": mask_ip_range,
    "phone": mask_phone,
    "document": mask_document,
    "bank_account": mask_identifier,
    "pix_key": mask_pix_key,
}


_TEXT_MASKS: dict[str, Callable[[str], str]] = {
    "email": mask_email,
    "document": mask_document,
    "card": mask_card,
    "ip": mask_ip,
    "phone": mask_phone,
    "number": _mask_digits,
}
"""The mask of each shape ``schemas.pii`` finds."""

_FIELD_TYPES = {"cpf": "document", "cnpj": "document", "name": "name", "full_name": "name"}


def mask_field(name: str, value: str) -> str:
    """The mask for a personal-data field named ``name`` (email, phone, cpf, cnpj, document,
    ip, name, wallet, pix_key...); an unknown field is hidden whole."""
    kind = _FIELD_TYPES.get(name.lower(), name.lower())
    return mask_name(value) if kind == "name" else mask_value(kind, value)


def mask_value(entity_type: str, value: str) -> str:
    """The mask for a list value of ``entity_type``; an unknown type hides the value whole."""
    mask = _MASKS.get(entity_type)
    return mask(value) if mask else HIDDEN
