"""Bulk import of block/allow-list entries: our CSV and JSONL, and OFAC's SDN list (pure).

Every parser takes lines already read (an open file, ``text.splitlines(keepends=True)``) and
yields, in order, the entries it could read and a :class:`LineError` for each line it could
not: an import reports all its bad lines at once instead of stopping at the first. Values come
out validated and normalised (:func:`engine.identities.normalise`), ready for
:func:`engine.identities.keyed_hash`; error messages show values masked only.

OFAC publishes its SDN list as ``sdn.xml`` and as ``sdn.csv``; both give, per sanctioned
party, the names to screen and the digital currency addresses to block (as ``wallet``
entries, ``CRITICAL``, source ``OFAC``). The XML is the complete source: the CSV keeps strong
aliases in ``alt.csv`` and overflowing remarks (addresses included) in ``sdn_comments.csv``,
which these parsers do not read.

>>> rows = list(parse_list_csv([
...     "entity_type,value,severity,reason,source,expires_at\\n",
...     "email, Ana@Example.COM ,HIGH,chargeback ring,MANUAL,\\n",
...     "document,111.111.111-11,HIGH,typo,MANUAL,\\n",
... ]))
>>> rows[0].value, str(rows[1])
('ana@example.com', "line 3: document '***.***.111-11' is not a valid CPF (check digits)")
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from engine.identities import InvalidListValue, normalise
from engine.masking import mask_text
from schemas.models import ListEntityType, ListSeverity, ListSource, utc_instant


@dataclass(frozen=True, slots=True)
class ListRow:
    """One list entry read from an import. ``value`` is normalised, not yet hashed (an
    ``ip_range`` is never hashed: see :class:`engine.identities.CidrIndex`)."""

    entity_type: ListEntityType
    value: str
    severity: ListSeverity
    source: ListSource
    reason: str
    expires_at: datetime | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    """A line an import could not read, and why (one line, values masked)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class SanctionedParty:
    """An SDN entry: the names to screen, and its addresses as ``wallet`` entries.

    Names are as OFAC writes them (``LAST, First`` for individuals) in both formats.
    """

    entry_id: int
    name: str
    party_type: str  # Individual, Entity, Vessel or Aircraft
    programs: tuple[str, ...]
    aliases: tuple[str, ...]
    wallets: tuple[ListRow, ...]


class _BadLine(ValueError):
    """Why a line is refused (one line, values masked)."""


REQUIRED_FIELDS = ("entity_type", "value", "severity", "reason", "source")
OPTIONAL_FIELDS = ("expires_at", "name")
MAX_REASON_LENGTH = 512

_Choice = TypeVar("_Choice", ListEntityType, ListSeverity, ListSource)


def _choice(kind: type[_Choice], field: str, text: str) -> _Choice:
    try:
        return kind(text)
    except ValueError:
        raise _BadLine(f"{field} {text[:20]!r} is not one of {', '.join(kind)}") from None


_EXPIRY_RULE = "must be ISO-8601 with a UTC offset, from 1970 to 9999"


def _expiry(text: str) -> datetime:
    try:
        return utc_instant(text)
    except ValueError:
        raise _BadLine(f"expires_at {_EXPIRY_RULE} (e.g. 2027-01-31T00:00:00Z)") from None


def _text(fields: Mapping[str, object], field: str) -> str:
    value = fields.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadLine(f"{field} must be a string")
    return value.strip()


def _list_row(fields: Mapping[str, object]) -> ListRow:
    """A row of our own format, from its fields by name (CSV columns or JSON keys)."""
    missing = [field for field in REQUIRED_FIELDS if not _text(fields, field)]
    if missing:
        raise _BadLine(f"missing {', '.join(missing)}")
    reason = _text(fields, "reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise _BadLine(f"reason is longer than {MAX_REASON_LENGTH} characters")
    entity_type = _choice(ListEntityType, "entity_type", _text(fields, "entity_type").lower())
    try:
        value = normalise(entity_type, _text(fields, "value"))
    except InvalidListValue as invalid:
        raise _BadLine(str(invalid)) from None
    expires_at = _text(fields, "expires_at")
    return ListRow(
        entity_type=entity_type,
        value=value,
        severity=_choice(ListSeverity, "severity", _text(fields, "severity").upper()),
        source=_choice(ListSource, "source", _text(fields, "source").upper()),
        reason=mask_text(reason),
        expires_at=_expiry(expires_at) if expires_at else None,
        name=_text(fields, "name") or None,
    )


def read_row(line: int, fields: Mapping[str, object]) -> ListRow | LineError:
    """One entry of our own format from its fields by name (a CSV row, a JSON object, an
    API request body, a default entry); the error names ``line``."""
    try:
        return _list_row(fields)
    except _BadLine as bad:
        return LineError(line, str(bad))


def _fields_problem(names: list[str]) -> str | None:
    """What is wrong with a CSV header or a JSON object's keys, if anything."""
    unknown = [name for name in names if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    missing = [field for field in REQUIRED_FIELDS if field not in names]
    if unknown:
        return f"unknown field(s) {', '.join(repr(name[:30]) for name in unknown)}"
    if missing:
        return f"missing {', '.join(missing)}"
    if len(set(names)) != len(names):
        return "a field is named twice"
    return None


def _csv_records(lines: Iterable[str]) -> Iterator[tuple[int, list[str]] | LineError]:
    """Non-blank CSV records with the line each ends on, or the error reading one."""
    reader = csv.reader(lines)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield LineError(reader.line_num, f"unreadable CSV ({error})")
            continue
        if "".join(record).strip("\x1a \t"):  # OFAC files end with a DOS end-of-file mark
            yield reader.line_num, record


def parse_list_csv(lines: Iterable[str]) -> Iterator[ListRow | LineError]:
    """Our CSV: a header naming ``entity_type,value,severity,reason,source`` and optionally
    ``expires_at`` (ISO-8601 with offset) and ``name``, in any order, then one entry a line.
    A header that cannot be used is reported and ends the import."""
    header: list[str] | None = None
    for record in _csv_records(lines):
        if isinstance(record, LineError):
            yield record
            continue
        line, cells = record
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            problem = _fields_problem(header)
            if problem:
                yield LineError(line, f"header: {problem}")
                return
        elif len(cells) != len(header):
            yield LineError(line, f"expected {len(header)} fields, found {len(cells)}")
        else:
            yield read_row(line, dict(zip(header, cells, strict=True)))


def parse_list_jsonl(lines: Iterable[str]) -> Iterator[ListRow | LineError]:
    """One JSON object a line, with the keys of :func:`parse_list_csv`'s header."""
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            fields: object = json.loads(text)
        except json.JSONDecodeError as error:
            yield LineError(line, f"not JSON ({error.msg} at character {error.pos + 1})")
            continue
        except (ValueError, RecursionError):  # a number of thousands of digits, deep nesting
            yield LineError(
                line, "not JSON this import reads (a number too long or nesting too deep)"
            )
            continue
        if not isinstance(fields, dict):
            yield LineError(line, "not a JSON object")
            continue
        problem = _fields_problem(list(fields))
        yield LineError(line, problem) if problem else read_row(line, fields)


_DIGITAL_CURRENCY = "Digital Currency Address - "
_REMARKS_ADDRESS = re.compile(r"Digital Currency Address - [A-Za-z0-9]+ ([^\s;]+)")
_REMARKS_ALIAS = re.compile(r"\b[afn]\.k\.a\. '([^']+)'")
_SDN_CSV_FIELDS = 12


def _party(
    line: int,
    *,
    uid: str,
    name: str,
    party_type: str,
    programs: list[str],
    aliases: list[str],
    addresses: list[str],
) -> Iterator[SanctionedParty | LineError]:
    """The party, after an error for each address that is not one (OFAC's files hold a few
    truncated ones); the entry itself is kept, so its name is still screened."""
    if not re.fullmatch(r"[0-9]+", uid):
        yield LineError(line, "SDN entry without a numeric uid")
        return
    if not name:
        yield LineError(line, f"uid {uid}: SDN entry without a name")
        return
    reason = f"OFAC SDN {'/'.join(programs)} uid {uid}"
    wallets: dict[str, ListRow] = {}
    for address in addresses:
        try:
            value = normalise(ListEntityType.WALLET, address)
        except InvalidListValue as invalid:
            yield LineError(line, f"uid {uid}: {invalid}")
            continue
        wallets.setdefault(  # one address is often listed for several tokens (ETH, USDT, ...)
            value,
            ListRow(
                ListEntityType.WALLET,
                value,
                ListSeverity.CRITICAL,
                ListSource.OFAC,
                reason,
                name=name,
            ),
        )
    yield SanctionedParty(
        int(uid), name, party_type, tuple(programs), tuple(aliases), tuple(wallets.values())
    )


def _local(tag: str) -> str:
    """``{http://tempuri.org/sdnList.xsd}uid`` -> ``uid``: OFAC has changed the namespace."""
    return tag.rpartition("}")[2]


def _children(element: ET.Element, name: str, item: str | None = None) -> list[ET.Element]:
    """Children called ``name``; with ``item``, their own children called ``item`` (lists)."""
    found = [child for child in element if _local(child.tag) == name]
    if item is None:
        return found
    return [child for parent in found for child in _children(parent, item)]


def _child_text(element: ET.Element, name: str) -> str:
    return next(((child.text or "").strip() for child in _children(element, name)), "")


def _xml_name(element: ET.Element) -> str:
    last, first = _child_text(element, "lastName"), _child_text(element, "firstName")
    return f"{last}, {first}" if last and first else last or first


def _xml_party(entry: ET.Element, line: int) -> Iterator[SanctionedParty | LineError]:
    identities = [
        (_child_text(ident, "idType"), _child_text(ident, "idNumber"))
        for ident in _children(entry, "idList", "id")
    ]
    return _party(
        line,
        uid=_child_text(entry, "uid"),
        name=_xml_name(entry),
        party_type=_child_text(entry, "sdnType"),
        programs=[(p.text or "").strip() for p in _children(entry, "programList", "program")],
        aliases=[_xml_name(aka) for aka in _children(entry, "akaList", "aka")],
        addresses=[number for kind, number in identities if kind.startswith(_DIGITAL_CURRENCY)],
    )


def _fed(parser: ET.XMLPullParser[ET.Element], lines: Iterable[bytes]) -> Iterator[int]:
    """Feeds ``lines`` one at a time, yielding the number of the line just fed; then closes."""
    line = 0
    for line, chunk in enumerate(lines, 1):
        parser.feed(chunk)
        yield line
    parser.close()
    yield line


def parse_ofac_xml(lines: Iterable[bytes]) -> Iterator[SanctionedParty | LineError]:
    """OFAC's ``sdn.xml``, either namespace, as bytes (the file declares its encoding).

    Read incrementally (the file is tens of megabytes) and forgotten entry by entry; an error
    names the line the entry ends on. Malformed XML is reported and ends the import.
    """
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    try:
        for line in _fed(parser, lines):
            for event in parser.read_events():
                element = event[-1]
                if not isinstance(element, ET.Element):
                    continue  # only start and end events were asked for, which carry one
                if root is None:
                    root = element
                elif event[0] == "end" and _local(element.tag) == "sdnEntry":
                    yield from _xml_party(element, line)
                    root.clear()
    except ET.ParseError as error:
        yield LineError(error.position[0], f"malformed XML ({error})")


def _sdn_cell(cell: str) -> str:
    cell = cell.strip()
    return "" if cell == "-0-" else cell  # OFAC's null


def parse_ofac_csv(lines: Iterable[str]) -> Iterator[SanctionedParty | LineError]:
    """OFAC's ``sdn.csv``: no header; ``ent_num, SDN_Name, SDN_Type, Program, Title,
    Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks``; ``-0-`` for null.

    Programs are written ``SDGT] [IRGC``; addresses and weak aliases are found in Remarks
    (``Digital Currency Address - XBT 1A...;``, ``a.k.a. 'NAME'``).
    """
    for record in _csv_records(lines):
        if isinstance(record, LineError):
            yield record
            continue
        line, cells = record
        if len(cells) != _SDN_CSV_FIELDS:
            yield LineError(line, f"expected {_SDN_CSV_FIELDS} fields, found {len(cells)}")
            continue
        ent_num, name, sdn_type, program, *_, remarks = (_sdn_cell(cell) for cell in cells)
        yield from _party(
            line,
            uid=ent_num,
            name=name,
            party_type=sdn_type.capitalize() or "Entity",
            programs=[p.strip(" []") for p in re.split(r"\]\s*\[", program) if p.strip(" []")],
            aliases=_REMARKS_ALIAS.findall(remarks),
            addresses=[a.rstrip(".") for a in _REMARKS_ADDRESS.findall(remarks)],
        )
