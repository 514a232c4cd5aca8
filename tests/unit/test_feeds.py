"""Feed parsers and what a refresh changes (pure): PEP/BACEN CSV, temporary e-mail domains,
sanctioned wallets, OFAC through the registry; a feed owns only what it listed."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from atalaia.feeds import FeedError, load_feeds, unzipped
from engine.feeds import (
    FEED_KINDS,
    FeedDefaults,
    ScreenedName,
    feed_actor,
    parse_pep_csv,
    parse_wallets,
    plan_refresh,
)
from engine.list_import import LineError, ListRow
from engine.lists import entry_from_row
from schemas.models import ListEntityType, ListKind, ListSeverity, ListSource

DATA = Path(__file__).resolve().parents[1] / "data"
KEY = b"feed-test-key"
AT = datetime(2026, 6, 1, tzinfo=UTC)
PEP = FeedDefaults(ListSeverity.LOW, ListSource.BACEN, "PEP", date(2026, 6, 1))

PEP_CSV = (
    '"CPF";"Nome_PEP";"Sigla_Função";"Descrição_Função";"Nível_Função";"Nome_Órgão";'
    '"Data_Início_Exercício";"Data_Fim_Exercício";"Data_Fim_Carência"\n'
    '"***.247.408-**";"JOSÉ DA SILVA";"DAS";"Diretor";"6";"Ministério da Fazenda";'
    '"01/01/2020";"";""\n'
    '"***.247.408-**";"JOSÉ DA SILVA";"CNS";"Conselheiro";"4";"Banco Central";'
    '"01/01/2021";"";""\n'
    '"529.982.247-25";"MARIA SOUZA";"PRE";"Prefeita";"";"Prefeitura de Itu";'
    '"01/01/2017";"31/12/2024";"31/12/2029"\n'
    '"***.111.222-**";"ANTÔNIO PEREIRA";"DEP";"Deputado";"";"Câmara";'
    '"01/01/2010";"31/12/2018";"31/12/2023"\n'
    '"123.456.789-00";"";"X";"";"";"";"";"";""\n'
)


def test_a_pep_list_gives_names_to_screen_and_full_cpfs_to_list() -> None:
    items = list(parse_pep_csv(PEP_CSV.encode("latin-1"), PEP))
    errors = [i for i in items if isinstance(i, LineError)]
    rows = [i for i in items if isinstance(i, ListRow)]
    names = {i.name: i for i in items if isinstance(i, ScreenedName)}
    assert [e.reason for e in errors] == ["no name"]
    assert set(names) == {"JOSÉ DA SILVA", "MARIA SOUZA"}  # Antônio's grace period ended
    assert names["JOSÉ DA SILVA"].programs == (
        "Diretor - Ministério da Fazenda",
        "Conselheiro - Banco Central",
    )
    assert names["JOSÉ DA SILVA"].kind == "PEP"
    (document,) = rows  # the masked CPFs cannot be listed
    assert (document.entity_type, document.value) == (ListEntityType.DOCUMENT, "52998224725")
    assert (document.severity, document.source) == (ListSeverity.LOW, ListSource.BACEN)
    assert document.reason == "PEP: Prefeita - Prefeitura de Itu"
    again = [i for i in parse_pep_csv(PEP_CSV.encode(), PEP) if isinstance(i, ScreenedName)]
    assert {n.entry_id for n in again} == {n.entry_id for n in names.values()}  # stable ids


def test_a_pep_file_without_a_name_column_is_refused() -> None:
    (error,) = list(parse_pep_csv(b"cpf,role\n1,2\n", PEP))
    assert isinstance(error, LineError) and "no name column" in error.reason


def test_plain_lists_of_domains_and_wallets() -> None:
    domains = FEED_KINDS["email-domains"]
    defaults = FeedDefaults(domains.severity, domains.source, domains.reason)
    body = b"# disposable\n@Mailinator.com\n*.yopmail.com  # and sub-domains\n\nnot a domain\n"
    items = list(domains.parse(body, defaults))
    assert [(i.value, i.severity.value) for i in items if isinstance(i, ListRow)] == [
        ("mailinator.com", "LOW"),
        ("yopmail.com", "LOW"),
    ]
    assert [i.line for i in items if isinstance(i, LineError)] == [5]
    wallets = FeedDefaults(ListSeverity.CRITICAL, ListSource.OFAC, "sanctioned wallet address")
    rows = list(parse_wallets(b"0x7F367cC41522cE07553e823bf3be79A889DEbe1B\n", wallets))
    assert rows == [
        ListRow(
            ListEntityType.WALLET,
            "0x7f367cc41522ce07553e823bf3be79a889debe1b",
            ListSeverity.CRITICAL,
            ListSource.OFAC,
            "sanctioned wallet address",
        )
    ]


def test_ofac_sdn_through_the_registry_gives_wallets_and_names() -> None:
    kind = FEED_KINDS["ofac-xml"]
    defaults = FeedDefaults(kind.severity, kind.source, kind.reason)
    items = list(kind.parse((DATA / "ofac_sdn_sample.xml").read_bytes(), defaults))
    rows = [i for i in items if isinstance(i, ListRow)]
    names = [i for i in items if isinstance(i, ScreenedName)]
    assert rows and all(r.severity is ListSeverity.CRITICAL for r in rows)
    assert len(names) >= 6 and all(n.entry_id.isdigit() for n in names)


def _row(value: str, severity: ListSeverity = ListSeverity.LOW) -> ListRow:
    return ListRow(ListEntityType.EMAIL_DOMAIN, value, severity, ListSource.EXTERNAL, "temp mail")


def test_a_refresh_adds_updates_removes_only_its_own_entries() -> None:
    actor = feed_actor("temp-mail")
    listed = [
        entry_from_row(_row("gone.com"), ListKind.BLOCK, KEY, actor, AT),
        entry_from_row(_row("same.com"), ListKind.BLOCK, KEY, actor, AT),
        entry_from_row(_row("worse.com"), ListKind.BLOCK, KEY, actor, AT),
        entry_from_row(_row("manual.com"), ListKind.BLOCK, KEY, "analyst-1", AT),
        entry_from_row(_row("other-feed.com"), ListKind.BLOCK, KEY, feed_actor("x"), AT),
    ]
    source = [
        _row("same.com"),
        _row("worse.com", ListSeverity.MEDIUM),
        _row("new.com"),
        _row("new.com"),  # listed twice in the source
        _row("manual.com"),
    ]
    plan = plan_refresh("temp-mail", ListKind.BLOCK, source, listed, KEY)
    assert [r.value for r in plan.add] == ["worse.com", "new.com"]
    assert [e.masked_value for e in plan.remove] == [listed[0].masked_value]
    assert (plan.unchanged, plan.kept_elsewhere) == (1, 1)


def test_feeds_files_are_checked_whole(tmp_path: Path) -> None:
    good = tmp_path / "feeds.toml"
    good.write_text('[[feeds]]\nname = "mail"\nkind = "email-domains"\nsource = "d.txt"\n')
    assert [f.name for f in load_feeds(good)] == ["mail"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[feeds]]\nname = "x"\nkind = "tor"\nsource = "a"\n')
    with pytest.raises(FeedError, match="kind: Value error, not one of ofac-xml"):
        load_feeds(bad)
    twice = tmp_path / "twice.toml"
    twice.write_text(good.read_text() * 2)
    with pytest.raises(FeedError, match="a feed name is used twice"):
        load_feeds(twice)
    with pytest.raises(FeedError, match="no feeds configured"):
        load_feeds(None)


def test_a_zipped_source_is_its_first_file() -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("pep_202512.csv", "Nome_PEP\nX\n")
    assert unzipped(packed.getvalue(), "pep.zip") == b"Nome_PEP\nX\n"
    assert unzipped(b"plain", "x.txt") == b"plain"
    with pytest.raises(FeedError, match="not a readable zip"):
        unzipped(b"PK\x03\x04broken", "x.zip")
