"""Bulk import: our CSV/JSONL and OFAC's SDN files, every bad line reported with its number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.list_import import (
    LineError,
    ListRow,
    SanctionedParty,
    parse_list_csv,
    parse_list_jsonl,
    parse_ofac_csv,
    parse_ofac_xml,
)
from schemas.models import ListEntityType, ListSeverity, ListSource

DATA = Path(__file__).parent.parent / "data"
T = ListEntityType
HEADER = "entity_type,value,severity,reason,source,expires_at\n"


def _csv(name: str) -> Iterator[str]:
    with (DATA / name).open(newline="", encoding="utf-8") as lines:
        yield from lines


def _errors(results: list[ListRow | LineError] | list[SanctionedParty | LineError]) -> list[int]:
    return [result.line for result in results if isinstance(result, LineError)]


def _rows(results: list[ListRow | LineError]) -> list[ListRow]:
    return [result for result in results if isinstance(result, ListRow)]


def test_csv_sample_reads_every_good_line_and_numbers_the_bad_ones() -> None:
    results = list(parse_list_csv(_csv("blacklist_sample.csv")))
    assert _errors(results) == [6, 10, 11]
    assert [str(e) for e in results if isinstance(e, LineError)] == [
        "line 6: document '***.***.111-11' is not a valid CPF (check digits)",
        "line 10: severity 'URGENT' is not one of LOW, MEDIUM, HIGH, CRITICAL",
        "line 11: expires_at must be ISO-8601 with a UTC offset, from 1970 to 9999 "
        "(e.g. 2027-01-31T00:00:00Z)",
    ]
    assert [(row.entity_type, row.value) for row in _rows(results)] == [
        (T.EMAIL, "fraudster@example.com"),
        (T.EMAIL_DOMAIN, "guerrillamail.com"),
        (T.WALLET, "0x9c4e1f2a7b3d5c8e0a6f1b2c3d4e5f6a7b8c9d0e"),
        (T.DOCUMENT, "52998224725"),
        (T.PHONE, "+5511987654321"),
        (T.IP_RANGE, "185.220.101.0/24"),
        (T.PIX_KEY, "11222333000181"),
        (T.PIX_KEY, "123e4567-e89b-42d3-a456-426614174000"),
        (T.DOCUMENT, "12ABC34501DE35"),
    ]


def test_csv_fields_are_typed() -> None:
    rows = _rows(list(parse_list_csv(_csv("blacklist_sample.csv"))))
    first, phone, quoted = rows[0], rows[4], rows[7]
    assert first == ListRow(
        T.EMAIL,
        "fraudster@example.com",
        ListSeverity.HIGH,
        ListSource.MANUAL,
        "chargeback ring",
        datetime(2027, 1, 31, tzinfo=UTC),
    )
    assert phone.expires_at == datetime(2027, 1, 1, 2, 59, 59, tzinfo=UTC)  # -03:00 to UTC
    assert (quoted.severity, quoted.source, quoted.expires_at) == (
        ListSeverity.MEDIUM,
        ListSource.MANUAL,
        None,
    )


def test_errors_never_show_the_raw_value() -> None:
    (error,) = parse_list_csv([HEADER, "phone,+55 11 8765-432,HIGH,r,MANUAL,\n"])
    assert error == LineError(
        2, "phone '***-***-5432' is not a Brazilian phone number (DDD and 8 or 9 digits)"
    )
    assert "8765-432" not in str(error)


def test_a_header_may_reorder_columns_and_add_a_name() -> None:
    lines = [
        "Source,Severity,Entity_Type,Value,Reason,Name\n",
        'MANUAL,LOW,document,529.982.247-25,"homonym, check",João Silva\n',
    ]
    (row,) = parse_list_csv(lines)
    assert row == ListRow(
        T.DOCUMENT,
        "52998224725",
        ListSeverity.LOW,
        ListSource.MANUAL,
        "homonym, check",
        None,
        "João Silva",
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("entity_type,value,severity,reason\n", "header: missing source"),
        (HEADER.replace("severity", "sevrity"), "header: unknown field(s) 'sevrity'"),
        (HEADER.rstrip() + ",reason\n", "header: a field is named twice"),
    ],
)
def test_an_unusable_header_is_reported_and_ends_the_import(header: str, reason: str) -> None:
    lines = [header, "email,a@b.com,HIGH,r,MANUAL,\n"]
    assert list(parse_list_csv(lines)) == [LineError(1, reason)]


def test_csv_line_problems_do_not_stop_the_import() -> None:
    lines = [
        HEADER,
        "email,a@b.com,HIGH\n",
        "\n",
        "email,,HIGH,r,MANUAL,\n",
        "bitcoin,1Fq7mXvR2aT9bKcN4dWe8hYjZpL3sGu6Qx,HIGH,r,MANUAL,\n",
        "email,a@b.com,HIGH,r,MANUAL,tomorrow\n",
        "email,a@b.com,HIGH," + "x" * 600 + ",MANUAL,\n",
        'email,a@b.com,HIGH,"' + "x" * 200_000 + '",MANUAL,\n',
        "email,a@b.com,HIGH,r,MANUAL,\n",
    ]
    results = list(parse_list_csv(lines))
    assert [str(e) for e in results if isinstance(e, LineError)] == [
        "line 2: expected 6 fields, found 3",
        "line 4: missing value",
        "line 5: entity_type 'bitcoin' is not one of user, wallet, email, email_domain, ip, "
        "ip_range, phone, document, bank_account, pix_key",
        "line 6: expires_at must be ISO-8601 with a UTC offset, from 1970 to 9999 "
        "(e.g. 2027-01-31T00:00:00Z)",
        "line 7: reason is longer than 512 characters",
        "line 8: unreadable CSV (field larger than field limit (131072))",
    ]
    assert [row.value for row in _rows(results)] == ["a@b.com"]


def test_a_record_over_several_lines_is_numbered_by_its_last() -> None:
    lines = [HEADER, 'email,a@b.com,HIGH,"two\n', 'lines",MANUAL,\n', "email,bad,HIGH,r,MANUAL,\n"]
    results = list(parse_list_csv(lines))
    assert _rows(results)[0].reason == "two\nlines"
    assert _errors(results) == [4]


def test_jsonl_sample_reads_every_good_line_and_numbers_the_bad_ones() -> None:
    results = list(parse_list_jsonl(_csv("blacklist_sample.jsonl")))
    assert [str(e) for e in results if isinstance(e, LineError)] == [
        "line 4: email '***.com' is not an e-mail address",
        "line 5: not JSON (Expecting ',' delimiter at character 114)",
        "line 8: unknown field(s) 'note'",
    ]
    email, user, phone, wallet = _rows(results)
    assert email.value == "fraudster@example.com"
    assert (user.entity_type, user.value, user.expires_at) == (T.USER, "u-1029", None)
    assert phone.value == "+552133445566"
    assert (wallet.source, wallet.name) == (ListSource.OFAC, "KOVALENKO, Dmitri Sergeyevich")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('["email", "a@b.com"]', "not a JSON object"),
        ('{"entity_type": "email", "value": "a@b.com"}', "missing severity, reason, source"),
        (
            '{"entity_type": "email", "value": "a@b.com", "severity": 3, "reason": "r", '
            '"source": "MANUAL"}',
            "severity must be a string",
        ),
    ],
)
def test_jsonl_shape_errors(line: str, reason: str) -> None:
    assert list(parse_list_jsonl([line])) == [LineError(1, reason)]


def _ofac_xml() -> list[SanctionedParty | LineError]:
    with (DATA / "ofac_sdn_sample.xml").open("rb") as lines:
        return list(parse_ofac_xml(lines))


def _parties(results: list[SanctionedParty | LineError]) -> list[SanctionedParty]:
    return [result for result in results if isinstance(result, SanctionedParty)]


def test_ofac_xml_gives_names_to_screen() -> None:
    parties = _parties(_ofac_xml())
    assert [(p.entry_id, p.name, p.party_type) for p in parties] == [
        (90001, "KOVALENKO, Dmitri Sergeyevich", "Individual"),
        (90002, "ORBITA EXCHANGE LTD", "Entity"),
        (90003, "SEA FALCON", "Vessel"),
        (90004, "RAMIREZ ORTEGA, Luis Alberto", "Individual"),
        (90005, "NORTHERN STAR TRADING CO.", "Entity"),
        (90006, "EP-TRX01", "Aircraft"),
    ]
    assert parties[0].aliases == ("KOVALENKO, Dmitry", "DIMA CRYPTO")
    assert parties[1].programs == ("CYBER2", "RUSSIA-EO14024")
    assert parties[2].aliases == () and parties[2].wallets == ()


def test_ofac_xml_gives_critical_wallet_entries() -> None:
    wallets = [wallet for party in _parties(_ofac_xml()) for wallet in party.wallets]
    assert [(w.value, w.reason) for w in wallets] == [
        ("1Fq7mXvR2aT9bKcN4dWe8hYjZpL3sGu6Qx", "OFAC SDN CYBER2 uid 90001"),
        ("0x5ab3c9e1d27f04a6b8e3c1d90f7a2b4e6c8d0f13", "OFAC SDN CYBER2 uid 90001"),
        ("0x3de9f5a07b1c84e2d6a9b0c7e5f1a3d8c2b4e690", "OFAC SDN CYBER2/RUSSIA-EO14024 uid 90002"),
    ]  # 90002 lists one address for ETH and USDT: one entry
    assert {(w.entity_type, w.severity, w.source, w.expires_at) for w in wallets} == {
        (T.WALLET, ListSeverity.CRITICAL, ListSource.OFAC, None)
    }
    assert wallets[0].name == "KOVALENKO, Dmitri Sergeyevich"


def test_ofac_xml_reports_a_bad_address_at_its_entry_and_keeps_the_entry() -> None:
    results = _ofac_xml()
    errors = [result for result in results if isinstance(result, LineError)]
    assert errors == [
        LineError(
            108, "uid 90002: wallet '...' is not a wallet address (20 to 128 letters and digits)"
        )
    ]
    assert results.index(errors[0]) == 1 and isinstance(results[2], SanctionedParty)


NEWER_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML">
  <sdnEntry><uid>7</uid><lastName>ACME MIXER</lastName><sdnType>Entity</sdnType>
    <programList><program>CYBER2</program></programList>
    <idList><id><idType>Digital Currency Address - TRX</idType>
      <idNumber>TXk2Pq9Rm4Vn7Ws3Yb8Zc5Ad1Ef6Gh2Jk</idNumber></id></idList>
  </sdnEntry>
  <sdnEntry><uid>x</uid><lastName>NO ID</lastName><sdnType>Entity</sdnType></sdnEntry>
</sdnList>
"""


def test_ofac_xml_in_the_newer_namespace_in_one_chunk() -> None:
    results = list(parse_ofac_xml([NEWER_XML]))
    party, error = results
    assert isinstance(party, SanctionedParty)
    assert [w.value for w in party.wallets] == ["TXk2Pq9Rm4Vn7Ws3Yb8Zc5Ad1Ef6Gh2Jk"]
    assert error == LineError(1, "SDN entry without a numeric uid")


def test_malformed_ofac_xml_is_reported_after_the_entries_before_it() -> None:
    lines = NEWER_XML.replace(b"</sdnList>", b"</sdnLst>").splitlines(keepends=True)
    *_, last = parse_ofac_xml(lines)
    assert last == LineError(9, "malformed XML (mismatched tag: line 9, column 2)")


def test_ofac_csv_reads_the_same_as_the_xml() -> None:
    from_csv = list(parse_ofac_csv(_csv("ofac_sdn_sample.csv")))
    assert _parties(from_csv) == _parties(_ofac_xml())
    assert [(e.line, e.reason) for e in from_csv if isinstance(e, LineError)] == [
        (2, "uid 90002: wallet '...' is not a wallet address (20 to 128 letters and digits)")
    ]


def test_ofac_csv_reports_short_records_and_goes_on() -> None:
    lines = [
        '1,"TRUNCATED"\n',
        '2,"OK, Name","individual","SDGT",' + ",".join(['"-0- "'] * 8) + "\n",
    ]
    short, party = parse_ofac_csv(lines)
    assert short == LineError(1, "expected 12 fields, found 2")
    assert isinstance(party, SanctionedParty)
    assert (party.name, party.party_type, party.programs) == ("OK, Name", "Individual", ("SDGT",))


def test_hostile_jsonl_lines_and_expiries_are_line_errors_and_reasons_are_masked() -> None:
    lines = [
        '{"entity_type": "ip", "value": ' + "[" * 5_000 + "]" * 5_000 + "}\n",
        '{"entity_type": "ip", "value": ' + "9" * 6_000 + "}\n",
        '{"entity_type":"ip","value":"1.2.3.4","severity":"LOW","reason":"r","source":"MANUAL",'
        '"expires_at":"0001-01-01T00:00:00+14:00"}\n',
        '{"entity_type":"ip","value":"1.2.3.4","severity":"LOW","source":"MANUAL",'
        '"reason":"ring of ana@bank.com, 529.982.247-25"}\n',
    ]
    deep, long_number, expiry, masked = parse_list_jsonl(lines)
    assert isinstance(deep, LineError) and "nesting too deep" in deep.reason
    assert isinstance(long_number, LineError) and "number too long" in long_number.reason
    assert isinstance(expiry, LineError) and "from 1970 to 9999" in expiry.reason
    assert isinstance(masked, ListRow)
    assert masked.reason == "ring of a***@bank.com, ***.***.247-25"
