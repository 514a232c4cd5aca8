"""List feeds (pure): the kinds of source a deployment refreshes its lists from, and what a
refresh changes.

A feed is a file or URL of one *kind*. Each kind is one entry of :data:`FEED_KINDS`: a parser
from the source's bytes to list rows (``engine.list_import.ListRow``), names to screen
(:class:`ScreenedName`) and the lines it could not read (``LineError``), with the severity,
source and reason its rows get when the source itself does not say. Another kind plugs in
with one more entry::

    FEED_KINDS["tor-exits"] = FeedKind(
        "TOR exit nodes, one IP a line", parse_tor_exits, ListSeverity.MEDIUM,
        ListSource.EXTERNAL, "TOR exit node")

A refresh owns what it listed: it adds the entries its source holds that are not listed yet,
updates the ones whose severity or reason changed, and removes the entries it added that the
source no longer holds; it never touches an entry another source (an analyst, another feed)
listed. :func:`plan_refresh` computes that, :mod:`atalaia.feeds` carries it out.

>>> defaults = FeedDefaults(ListSeverity.LOW, ListSource.EXTERNAL, "temporary e-mail domain")
>>> rows = list(parse_email_domains(b"# disposable\\n@Mailinator.com\\nnot a domain\\n", defaults))
>>> rows[0].value, rows[0].severity.value, rows[1].line
('mailinator.com', 'LOW', 3)
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from engine.identities import InvalidListValue, normalise
from engine.list_import import (
    LineError,
    ListRow,
    SanctionedParty,
    parse_list_csv,
    parse_list_jsonl,
    parse_ofac_csv,
    parse_ofac_xml,
)
from engine.lists import entry_id, value_key_of
from schemas.models import ListEntityType, ListEntry, ListKind, ListSeverity, ListSource


@dataclass(frozen=True, slots=True)
class ScreenedName:
    """A name to screen (sanctions, PEP), with the id it keeps across refreshes."""

    entry_id: str
    name: str
    kind: str
    programs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


FeedItem = ListRow | ScreenedName | LineError


@dataclass(frozen=True, slots=True)
class FeedDefaults:
    """What a feed's rows get when its source does not say (a plain list of values)."""

    severity: ListSeverity
    source: ListSource
    reason: str
    as_of: date | None = None
    """The day of the refresh, for sources whose rows end (a PEP's grace period)."""


Parser = Callable[[bytes, FeedDefaults], Iterator[FeedItem]]


@dataclass(frozen=True, slots=True)
class FeedKind:
    description: str
    parse: Parser
    severity: ListSeverity
    source: ListSource
    reason: str
    list_name: str = ""
    """How screening shows the names this kind gives (OFAC, PEP)."""


def _text(body: bytes) -> str:
    """UTF-8, or Latin-1 (Brazilian government files often are); a BOM is dropped."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _values(body: bytes) -> Iterator[tuple[int, str]]:
    """Non-blank, non-comment lines (``#``), each with its number; a trailing comment or a
    second column (``value,comment``) is dropped."""
    for number, line in enumerate(_text(body).splitlines(), 1):
        value = line.split("#", 1)[0].split(",", 1)[0].strip()
        if value:
            yield number, value


def _plain_list(entity_type: ListEntityType, strip: str = "") -> Parser:
    """A parser of one value a line, of ``entity_type``."""

    def parse(body: bytes, defaults: FeedDefaults) -> Iterator[FeedItem]:
        for number, raw in _values(body):
            try:
                value = normalise(entity_type, raw.lstrip(strip))
            except InvalidListValue as invalid:
                yield LineError(number, str(invalid))
                continue
            yield ListRow(entity_type, value, defaults.severity, defaults.source, defaults.reason)

    return parse


parse_email_domains = _plain_list(ListEntityType.EMAIL_DOMAIN, strip="@*.")
"""Temporary (disposable) e-mail domains, one a line (``@`` or ``*.`` before it is fine)."""
parse_wallets = _plain_list(ListEntityType.WALLET)
"""Sanctioned wallet addresses, one a line (as OFAC's per-currency address lists)."""


def _fold(text: str) -> str:
    """``Descrição_Função`` -> ``descricao_funcao``: header names without accents or case."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain.strip().strip('"').lower().replace(" ", "_")


_PEP_NAME = ("nome_pep", "nome", "name")
_PEP_CPF = ("cpf", "cpf_pep", "documento")
_PEP_ROLE = ("descricao_funcao", "funcao", "cargo", "sigla_funcao")
_PEP_BODY = ("nome_orgao", "orgao")
_PEP_GRACE_END = ("data_fim_carencia", "fim_carencia")


def _column(header: Sequence[str], names: Sequence[str]) -> int | None:
    return next((header.index(name) for name in names if name in header), None)


def _day(text: str) -> date | None:
    """``31/12/2026`` (as Brazilian files write it) or ``2026-12-31``; None if neither."""
    text = text.strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).date()  # noqa: DTZ007 (a calendar day)
        except ValueError:
            continue
    return None


def parse_pep_csv(body: bytes, defaults: FeedDefaults) -> Iterator[FeedItem]:
    """A PEP list in the Portal da Transparência / BACEN style: ``;``- or ``,``-separated,
    UTF-8 or Latin-1, a header naming at least the person (``Nome_PEP``), and optionally
    ``CPF``, ``Descrição_Função``, ``Nome_Órgão`` and ``Data_Fim_Carência``.

    Every person becomes a name to screen (one per name and CPF as written, their roles
    together); a complete, valid CPF also becomes a ``document`` entry (the public file masks
    CPFs, so usually none does). A person whose grace period ended before ``as_of`` is no
    longer a PEP and is left out."""
    text = _text(body)
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter=";" if first.count(";") else ",")
    header: list[str] | None = None
    people: dict[str, ScreenedName] = {}
    for record in reader:
        if not "".join(record).strip():
            continue
        if header is None:
            header = [_fold(cell) for cell in record]
            if _column(header, _PEP_NAME) is None:
                yield LineError(reader.line_num, "header: no name column (Nome_PEP)")
                return
            continue
        cells = dict(zip(header, (cell.strip() for cell in record), strict=False))
        name = next((cells[c] for c in _PEP_NAME if cells.get(c)), "")
        if not name:
            yield LineError(reader.line_num, "no name")
            continue
        grace_end = _day(next((cells[c] for c in _PEP_GRACE_END if cells.get(c)), ""))
        if grace_end is not None and defaults.as_of is not None and grace_end < defaults.as_of:
            continue
        cpf = next((cells[c] for c in _PEP_CPF if cells.get(c)), "")
        role = next((cells[c] for c in _PEP_ROLE if cells.get(c)), "")
        body_name = next((cells[c] for c in _PEP_BODY if cells.get(c)), "")
        held = " - ".join(filter(None, [role, body_name]))[:64]
        key = hashlib.sha256(f"{name.casefold()}|{cpf}".encode()).hexdigest()[:20]
        known = people.get(key)
        programs = (*(known.programs if known else ()), *([held] if held else ()))
        people[key] = ScreenedName(key, name, "PEP", tuple(dict.fromkeys(programs)))
        if cpf and "*" not in cpf:
            try:
                document = normalise(ListEntityType.DOCUMENT, cpf)
            except InvalidListValue as invalid:
                yield LineError(reader.line_num, str(invalid))
                continue
            reason = f"{defaults.reason}: {held}" if held else defaults.reason
            yield ListRow(
                ListEntityType.DOCUMENT, document, defaults.severity, defaults.source, reason
            )
    yield from people.values()


def _sanctioned(items: Iterable[SanctionedParty | LineError]) -> Iterator[FeedItem]:
    """OFAC parties as their wallet rows and their name to screen."""
    for item in items:
        if isinstance(item, LineError):
            yield item
            continue
        yield from item.wallets
        yield ScreenedName(
            str(item.entry_id), item.name, item.party_type, item.programs, item.aliases
        )


def parse_ofac_sdn_xml(body: bytes, _defaults: FeedDefaults) -> Iterator[FeedItem]:
    return _sanctioned(parse_ofac_xml(body.splitlines(keepends=True)))


def parse_ofac_sdn_csv(body: bytes, _defaults: FeedDefaults) -> Iterator[FeedItem]:
    return _sanctioned(parse_ofac_csv(_text(body).splitlines(keepends=True)))


def parse_our_csv(body: bytes, _defaults: FeedDefaults) -> Iterator[FeedItem]:
    return iter(parse_list_csv(_text(body).splitlines(keepends=True)))


def parse_our_jsonl(body: bytes, _defaults: FeedDefaults) -> Iterator[FeedItem]:
    return iter(parse_list_jsonl(_text(body).splitlines(keepends=True)))


FEED_KINDS: dict[str, FeedKind] = {
    "ofac-xml": FeedKind(
        "OFAC SDN list, sdn.xml: names to screen, digital currency addresses to block",
        parse_ofac_sdn_xml,
        ListSeverity.CRITICAL,
        ListSource.OFAC,
        "OFAC SDN",
        "OFAC",
    ),
    "ofac-csv": FeedKind(
        "OFAC SDN list, sdn.csv (addresses in its remarks)",
        parse_ofac_sdn_csv,
        ListSeverity.CRITICAL,
        ListSource.OFAC,
        "OFAC SDN",
        "OFAC",
    ),
    "pep-csv": FeedKind(
        "PEP list, Portal da Transparência / BACEN CSV: names to screen, full CPFs listed",
        parse_pep_csv,
        ListSeverity.LOW,
        ListSource.BACEN,
        "PEP",
        "PEP",
    ),
    "email-domains": FeedKind(
        "temporary (disposable) e-mail domains, one a line",
        parse_email_domains,
        ListSeverity.LOW,
        ListSource.EXTERNAL,
        "temporary e-mail domain",
    ),
    "wallets": FeedKind(
        "sanctioned wallet addresses, one a line",
        parse_wallets,
        ListSeverity.CRITICAL,
        ListSource.OFAC,
        "sanctioned wallet address",
    ),
    "list-csv": FeedKind(
        "Atalaia's own list CSV (each row has its severity, source and reason)",
        parse_our_csv,
        ListSeverity.MEDIUM,
        ListSource.EXTERNAL,
        "feed",
    ),
    "list-jsonl": FeedKind(
        "Atalaia's own list JSONL",
        parse_our_jsonl,
        ListSeverity.MEDIUM,
        ListSource.EXTERNAL,
        "feed",
    ),
}


def feed_actor(feed_name: str) -> str:
    """The actor id a feed's entries are created and removed by: what it owns."""
    return f"feed:{feed_name}"


@dataclass(frozen=True)
class RefreshPlan:
    add: list[ListRow]
    """New entries, and entries of this feed whose severity, source or reason changed."""
    remove: list[ListEntry]
    """Entries this feed listed that its source no longer holds."""
    unchanged: int
    kept_elsewhere: int
    """Values the source holds that another source already lists (left as they are)."""


def plan_refresh(
    feed_name: str,
    kind: ListKind,
    rows: Iterable[ListRow],
    active: Iterable[ListEntry],
    hash_key: bytes,
) -> RefreshPlan:
    """What a refresh changes, given the rows the source holds now and the entries active in
    the lists (every source's)."""
    actor = feed_actor(feed_name)
    by_id = {entry.entry_id: entry for entry in active if entry.list_kind is kind}
    wanted: dict[str, ListRow] = {}
    for row in rows:
        listed = entry_id(kind, row.entity_type, value_key_of(row.entity_type, row.value, hash_key))
        wanted.setdefault(listed, row)  # a value listed twice: its first row
    add, unchanged, elsewhere = [], 0, 0
    for listed, row in wanted.items():
        known = by_id.get(listed)
        if known is None:
            add.append(row)
        elif known.created_by != actor:
            elsewhere += 1
        elif (known.severity, known.source, known.reason, known.expires_at) != (
            row.severity,
            row.source,
            row.reason,
            row.expires_at,
        ):
            add.append(row)
        else:
            unchanged += 1
    remove = [
        entry
        for listed, entry in by_id.items()
        if entry.created_by == actor and listed not in wanted
    ]
    return RefreshPlan(add, remove, unchanged, elsewhere)
