"""What a block/allow-list value is, in one canonical spelling, and the keyed hash it is kept by.

The lists hold personal data (e-mails, phones, CPF/CNPJ, PIX keys, IPs), so a stored entry is
``keyed_hash(normalise(type, raw), key)``, never the value itself; the list can then be
checked without being readable. Hashing only matches what is spelled the same, so every value
is first normalised (``' Foo@Example.COM '`` and ``'foo@example.com'`` are one entry) and
validated (a CPF with wrong check digits is refused, not silently never matched).

A hash cannot answer "is this IP inside that network", so IP ranges are matched by
:class:`CidrIndex` instead, over ranges kept in clear (see there why that is acceptable).

>>> normalise(ListEntityType.EMAIL, " Foo@Example.COM ")
'foo@example.com'
>>> normalise(ListEntityType.PHONE, "(11) 98765-4321")
'+5511987654321'
>>> len(keyed_hash("foo@example.com", b"key"))
64
>>> normalise(ListEntityType.DOCUMENT, "111.111.111-11")
Traceback (most recent call last):
...
engine.identities.InvalidListValue: document '***.***.111-11' is not a valid CPF (check digits)
>>> [kind.value for kind, _ in lookup_hashes(ListEntityType.EMAIL, "ana@mail.tempmail.org", b"k")]
['email', 'email_domain', 'email_domain']
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from enum import StrEnum

from engine.masking import mask_value
from schemas.models import ListEntityType

MAX_LENGTH = 256
"""Longest raw value accepted, after stripping (the longest real ones, Monero addresses, are
106 characters)."""


class PixKeyKind(StrEnum):
    """The five kinds of PIX key in Bacen's DICT."""

    EMAIL = "email"
    PHONE = "phone"
    CPF = "cpf"
    CNPJ = "cnpj"
    EVP = "evp"


class InvalidListValue(ValueError):
    """A list value that cannot be normalised. The message is one line and shows the value
    masked only; the raw value is not kept on the exception either."""

    def __init__(self, entity_type: ListEntityType, raw: str, problem: str) -> None:
        masked = mask_value(entity_type, raw.strip()[:MAX_LENGTH])
        super().__init__(f"{entity_type} {masked!r} {problem}")
        self.entity_type = entity_type


class _Invalid(ValueError):
    """A problem found by a normaliser; its text never holds the value."""


_CPF_SHAPE = re.compile(r"[0-9]{11}")
_CNPJ_SHAPE = re.compile(r"[0-9A-Z]{12}[0-9]{2}")
_CPF_WEIGHTS = ((10, 9, 8, 7, 6, 5, 4, 3, 2), (11, 10, 9, 8, 7, 6, 5, 4, 3, 2))
_CNPJ_WEIGHTS = ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))


def _check_digits_match(chars: str, weights: tuple[tuple[int, ...], ...]) -> bool:
    """Receita Federal's mod-11 check digits. A character counts as its code minus 48: its
    value for a digit, and what the alphanumeric CNPJ (issued from July 2026) uses for a
    letter."""
    if len(set(chars)) == 1:
        return False  # 000.000.000-00, 111.111.111-11, ... pass mod 11 but are not issued
    values = [ord(char) - 48 for char in chars]
    for position, weighting in enumerate(weights, start=len(chars) - len(weights)):
        remainder = sum(v * w for v, w in zip(values, weighting, strict=False)) % 11
        if values[position] != (0 if remainder < 2 else 11 - remainder):
            return False
    return True


def is_valid_cpf(digits: str) -> bool:
    """11 digits with matching check digits.

    >>> is_valid_cpf("52998224725"), is_valid_cpf("52998224724"), is_valid_cpf("11111111111")
    (True, False, False)
    """
    return bool(_CPF_SHAPE.fullmatch(digits)) and _check_digits_match(digits, _CPF_WEIGHTS)


def is_valid_cnpj(chars: str) -> bool:
    """14 characters (12 digits or upper-case letters, then 2 check digits) that match.

    >>> [is_valid_cnpj(c) for c in ("11222333000181", "12ABC34501DE35", "11222333000182")]
    [True, True, False]
    """
    return bool(_CNPJ_SHAPE.fullmatch(chars)) and _check_digits_match(chars, _CNPJ_WEIGHTS)


_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})+")
_EMAIL_LOCAL = re.compile(r"[^\s@]{1,64}")
_PHONE = re.compile(r"\+?[0-9 ().-]+")
_DOCUMENT_PUNCTUATION = re.compile(r"[.\-/ ]")
_EVP = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_BECH32_ADDRESS = re.compile(r"(bc|tb|ltc)1[02-9ac-hj-np-z]{6,87}", re.IGNORECASE)
_WALLET = re.compile(r"[A-Za-z0-9:]{20,128}")


def _domain(value: str) -> str:
    try:
        domain = value.lower().removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise _Invalid("is not a domain name") from None
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise _Invalid("is not a domain name")
    return domain


def _email(value: str) -> str:
    local, at, domain = value.lower().rpartition("@")
    if not at or not _EMAIL_LOCAL.fullmatch(local):
        raise _Invalid("is not an e-mail address")
    return f"{local}@{_domain(domain)}"


def _email_domain(value: str) -> str:
    return _domain(value.removeprefix("@"))


def _brazilian_phone(national: str) -> str:
    """``+55`` and a DDD (two non-zero digits) with 8 digits, or 9 for a mobile (``9...``)."""
    valid = (len(national) == 10 or (len(national) == 11 and national[2] == "9")) and (
        "0" not in national[:2]
    )
    if not valid:
        raise _Invalid("is not a Brazilian phone number (DDD and 8 or 9 digits)")
    return f"+55{national}"


def _phone(value: str) -> str:
    """E.164. A number without ``+`` is Brazilian: ``(11) 98765-4321``, ``011 98765-4321``
    and ``55 11 98765-4321`` all become ``+5511987654321``."""
    if not _PHONE.fullmatch(value):
        raise _Invalid("has characters a phone number cannot have")
    digits = re.sub(r"\D", "", value)
    if value.startswith("+"):
        if digits.startswith("55"):
            return _brazilian_phone(digits[2:])
        if not 8 <= len(digits) <= 15:
            raise _Invalid("is not an E.164 phone number")
        return f"+{digits}"
    national = digits.lstrip("0")  # trunk (0) and international (00) prefixes
    if len(national) in (12, 13) and national.startswith("55"):
        national = national[2:]
    return _brazilian_phone(national)


def _document(value: str) -> str:
    """CPF or CNPJ, punctuation removed, letters (alphanumeric CNPJ) upper-cased."""
    compact = _DOCUMENT_PUNCTUATION.sub("", value).upper()
    if _CPF_SHAPE.fullmatch(compact):
        if not is_valid_cpf(compact):
            raise _Invalid("is not a valid CPF (check digits)")
    elif len(compact) == 14 and _CNPJ_SHAPE.fullmatch(compact):
        if not is_valid_cnpj(compact):
            raise _Invalid("is not a valid CNPJ (check digits)")
    else:
        raise _Invalid("is not a CPF (11 digits) or a CNPJ (14 characters)")
    return compact


def _ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _Invalid("is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)  # ::ffff:203.0.113.7 is 203.0.113.7
    return str(address)


def _ip_range(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _Invalid("is not an IPv4 or IPv6 network (CIDR)") from None
    if network.num_addresses == 1:
        raise _Invalid("names a single address: list it as an ip, which is kept hashed")
    return str(network)


def _wallet(value: str) -> str:
    """Hex (EVM) and bech32 addresses are case-insensitive, so lower-cased; others (base58,
    Monero, ...) are case-sensitive and kept as written."""
    if _HEX_ADDRESS.fullmatch(value) or _BECH32_ADDRESS.fullmatch(value):
        return value.lower()
    if not _WALLET.fullmatch(value):
        raise _Invalid("is not a wallet address (20 to 128 letters and digits)")
    return value


def _evp(value: str) -> str:
    if not _EVP.fullmatch(value):
        raise _Invalid("is not a random PIX key (UUID)")
    return value.lower()


def _identifier(value: str) -> str:
    if len(value.split()) != 1:
        raise _Invalid("must not contain spaces")
    return value


def _bank_account(value: str) -> str:
    """Spacing collapsed and letters upper-cased: a check digit is written ``x`` or ``X``."""
    return " ".join(value.split()).upper()


def pix_key_kind(raw: str) -> PixKeyKind | None:
    """What kind of PIX key ``raw`` is, by its shape; None when it has the shape of none.

    DICT writes a phone key with ``+55``; one typed without it is still read as a phone,
    unless its 11 digits are a valid CPF or it is punctuated like one.

    >>> [pix_key_kind(k) for k in ("a@b.com", "+5511987654321", "11987654321", "joao")]
    [<PixKeyKind.EMAIL: 'email'>, <PixKeyKind.PHONE: 'phone'>, <PixKeyKind.PHONE: 'phone'>, None]
    >>> [pix_key_kind(k) for k in ("529.982.247-25", "11222333000181")]
    [<PixKeyKind.CPF: 'cpf'>, <PixKeyKind.CNPJ: 'cnpj'>]
    """
    value = raw.strip()
    compact = _DOCUMENT_PUNCTUATION.sub("", value)
    if "@" in value:
        return PixKeyKind.EMAIL
    if _EVP.fullmatch(value):
        return PixKeyKind.EVP
    if len(compact) == 14 and not value.startswith("+"):
        return PixKeyKind.CNPJ
    if len(compact) == 11 and ("." in value or is_valid_cpf(compact)):
        return PixKeyKind.CPF
    if _PHONE.fullmatch(value):
        return PixKeyKind.PHONE
    return None


_PIX_NORMALISERS: dict[PixKeyKind, Callable[[str], str]] = {
    PixKeyKind.EMAIL: _email,
    PixKeyKind.PHONE: _phone,
    PixKeyKind.CPF: _document,
    PixKeyKind.CNPJ: _document,
    PixKeyKind.EVP: _evp,
}


def _pix_key(value: str) -> str:
    kind = pix_key_kind(value)
    if kind is None:
        raise _Invalid("is not a PIX key (e-mail, phone, CPF, CNPJ or random key)")
    return _PIX_NORMALISERS[kind](value)


_NORMALISERS: dict[ListEntityType, Callable[[str], str]] = {
    ListEntityType.USER: _identifier,
    ListEntityType.WALLET: _wallet,
    ListEntityType.EMAIL: _email,
    ListEntityType.EMAIL_DOMAIN: _email_domain,
    ListEntityType.IP: _ip,
    ListEntityType.IP_RANGE: _ip_range,
    ListEntityType.PHONE: _phone,
    ListEntityType.DOCUMENT: _document,
    ListEntityType.BANK_ACCOUNT: _bank_account,
    ListEntityType.PIX_KEY: _pix_key,
}


def normalise(entity_type: ListEntityType, raw: str) -> str:
    """The one spelling of ``raw`` that is hashed and compared; :class:`InvalidListValue`
    when it is not a valid value of ``entity_type``."""
    value = raw.strip()
    try:
        if not value:
            raise _Invalid("is empty")
        if len(value) > MAX_LENGTH:
            raise _Invalid(f"is longer than {MAX_LENGTH} characters")
        if not value.isprintable():
            raise _Invalid("contains control characters")
        return _NORMALISERS[entity_type](value)
    except _Invalid as problem:
        raise InvalidListValue(entity_type, raw, str(problem)) from None


def keyed_hash(normalised: str, key: bytes) -> str:
    """HMAC-SHA256 hex (64 digits) of the normalised value: the same hash upstream puts in an
    event's ``*_hash`` fields, so lists match events. The type is not hashed (a hashed PIX key
    must match the e-mail, phone or document it is): lookups always pair a hash with its type.
    """
    if not key:
        raise ValueError("the hash key must not be empty")
    return hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()


def domains_within(domain: str) -> list[str]:
    """``a.tempmail.org`` -> itself and ``tempmail.org``: listing a disposable-mail domain
    also covers the sub-domains such services hand out."""
    labels = domain.split(".")
    return [".".join(labels[start:]) for start in range(len(labels) - 1)]


_PIX_ALSO: dict[PixKeyKind, ListEntityType] = {
    PixKeyKind.EMAIL: ListEntityType.EMAIL,
    PixKeyKind.PHONE: ListEntityType.PHONE,
    PixKeyKind.CPF: ListEntityType.DOCUMENT,
    PixKeyKind.CNPJ: ListEntityType.DOCUMENT,
}


def _listed_as(entity_type: ListEntityType, normalised: str) -> list[tuple[ListEntityType, str]]:
    if entity_type is ListEntityType.EMAIL:
        domain = normalised.rpartition("@")[2]
        return [(entity_type, normalised), *_listed_as(ListEntityType.EMAIL_DOMAIN, domain)]
    if entity_type is ListEntityType.EMAIL_DOMAIN:
        return [(entity_type, domain) for domain in domains_within(normalised)]
    if entity_type is ListEntityType.PIX_KEY:
        kind = pix_key_kind(normalised)
        also = _PIX_ALSO.get(kind) if kind else None
        return [(entity_type, normalised), *(_listed_as(also, normalised) if also else [])]
    return [(entity_type, normalised)]


def lookup_hashes(
    entity_type: ListEntityType, raw: str, key: bytes
) -> list[tuple[ListEntityType, str]]:
    """Every (type, hash) under which ``raw`` may be listed: an e-mail also under its domain
    and the domains above it, a PIX key also as the e-mail, phone or document it is.

    IP ranges containing an IP are not among them: ask a :class:`CidrIndex`.
    """
    return [
        (kind, keyed_hash(value, key))
        for kind, value in _listed_as(entity_type, normalise(entity_type, raw))
    ]


class CidrIndex:
    """Listed IP ranges, answering which of them contain an address.

    Ranges are kept in clear, as (network as an integer, prefix length): containment is
    arithmetic on the address, which a hash destroys. That is acceptable because a range
    names a network (a hosting provider, a VPN or Tor exit pool, an operator's block), not a
    person; a single-address range is refused by :func:`normalise` and must be listed as an
    ``ip``, which is hashed.

    A lookup costs one dictionary probe per distinct prefix length listed (at most 32 for
    IPv4, 128 for IPv6), whatever the number of ranges.

    >>> index = CidrIndex()
    >>> index.add("tor", "185.220.101.0/24")
    >>> index.add("v6", "2001:db8::/32")
    >>> index.contains("185.220.101.7"), index.contains("2001:db8::1"), index.contains("8.8.8.8")
    (['tor'], ['v6'], [])
    """

    def __init__(self) -> None:
        # version -> prefix length -> network address as an int -> range ids
        self._networks: dict[int, dict[int, dict[int, list[str]]]] = {4: {}, 6: {}}

    def add(self, range_id: str, cidr: str) -> None:
        """List ``cidr`` under ``range_id``; :class:`InvalidListValue` if it is not a range."""
        network = ipaddress.ip_network(normalise(ListEntityType.IP_RANGE, cidr))
        by_prefix = self._networks[network.version]
        ids = by_prefix.setdefault(network.prefixlen, {}).setdefault(
            int(network.network_address), []
        )
        if range_id not in ids:
            ids.append(range_id)

    def contains(self, ip: str) -> list[str]:
        """Ids of the ranges containing ``ip``, most specific first."""
        address = ipaddress.ip_address(normalise(ListEntityType.IP, ip))
        bits = address.max_prefixlen
        number = int(address)
        found: list[str] = []
        by_prefix = self._networks[address.version]
        for prefix in sorted(by_prefix, reverse=True):
            host_bits = bits - prefix
            found += by_prefix[prefix].get(number >> host_bits << host_bits, [])
        return found
