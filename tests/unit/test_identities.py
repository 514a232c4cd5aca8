"""List values: one canonical spelling per value, refused when invalid, hashed with a key."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import TypeAdapter

from engine.identities import (
    CidrIndex,
    InvalidListValue,
    PixKeyKind,
    is_valid_cnpj,
    is_valid_cpf,
    keyed_hash,
    lookup_hashes,
    normalise,
    pix_key_kind,
)
from schemas.models import HashedIdentity, ListEntityType

KEY = b"test-key"
T = ListEntityType


@pytest.mark.parametrize("cpf", ["52998224725", "39053344705", "11144477735"])
def test_valid_cpfs(cpf: str) -> None:
    assert is_valid_cpf(cpf)


@pytest.mark.parametrize(
    "cpf", ["52998224724", "52998224715", "11111111111", "00000000000", "5299822472", "5299822472a"]
)
def test_invalid_cpfs(cpf: str) -> None:
    assert not is_valid_cpf(cpf)


@pytest.mark.parametrize("cnpj", ["11222333000181", "11444777000161", "12ABC34501DE35"])
def test_valid_cnpjs_numeric_and_alphanumeric(cnpj: str) -> None:
    assert is_valid_cnpj(cnpj)


@pytest.mark.parametrize(
    "cnpj",
    ["11222333000182", "11222333000191", "00000000000000", "12ABC34501DE36", "12abc34501de35"],
)
def test_invalid_cnpjs(cnpj: str) -> None:
    assert not is_valid_cnpj(cnpj)


@pytest.mark.parametrize(
    ("entity_type", "spellings", "canonical"),
    [
        (T.EMAIL, [" Foo@Example.COM ", "foo@example.com", "FOO@EXAMPLE.COM."], "foo@example.com"),
        (T.EMAIL, ["ana@exämple.com"], "ana@xn--exmple-cua.com"),
        (T.EMAIL_DOMAIN, ["@GuerrillaMail.com", "guerrillamail.com "], "guerrillamail.com"),
        (
            T.PHONE,
            [
                "(11) 98765-4321",
                "11987654321",
                "011 98765 4321",
                "+55 11 98765-4321",
                "5511987654321",
            ],
            "+5511987654321",
        ),
        (T.PHONE, ["0055 11 987654321", "+55 (11) 9 8765 4321"], "+5511987654321"),
        (T.PHONE, ["(21) 3344-5566", "+55 21 3344-5566"], "+552133445566"),
        (T.PHONE, ["+1 (202) 555-0143"], "+12025550143"),
        (T.DOCUMENT, ["529.982.247-25", " 52998224725 "], "52998224725"),
        (T.DOCUMENT, ["11.222.333/0001-81", "11222333000181"], "11222333000181"),
        (T.DOCUMENT, ["12.abc.345/01de-35"], "12ABC34501DE35"),
        (T.IP, ["203.0.113.7 ", "::ffff:203.0.113.7"], "203.0.113.7"),
        (T.IP, ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"], "2001:db8::1"),
        (T.IP_RANGE, ["10.1.2.3/8", "10.0.0.0/8"], "10.0.0.0/8"),
        (T.IP_RANGE, ["2001:DB8::1/32"], "2001:db8::/32"),
        (
            T.WALLET,
            [
                "0x7F367cC41522cE07553e823bf3be79A889DEbe1B",
                "0x7f367cc41522ce07553e823bf3be79a889debe1b",
            ],
            "0x7f367cc41522ce07553e823bf3be79a889debe1b",
        ),
        (
            T.WALLET,
            ["BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ"],
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ),
        (T.WALLET, [" 1Fq7mXvR2aT9bKcN4dWe8hYjZpL3sGu6Qx "], "1Fq7mXvR2aT9bKcN4dWe8hYjZpL3sGu6Qx"),
        (T.PIX_KEY, ["Maria@Example.com"], "maria@example.com"),
        (T.PIX_KEY, ["+55 (11) 98765-4321", "11987654321"], "+5511987654321"),
        (T.PIX_KEY, ["529.982.247-25", "52998224725"], "52998224725"),
        (T.PIX_KEY, ["11.222.333/0001-81"], "11222333000181"),
        (
            T.PIX_KEY,
            ["123E4567-E89B-42D3-A456-426614174000"],
            "123e4567-e89b-42d3-a456-426614174000",
        ),
        (T.USER, ["  u-1029 "], "u-1029"),
        (T.BANK_ACCOUNT, [" 341  1234 56789-x "], "341 1234 56789-X"),
    ],
)
def test_spellings_of_one_value_normalise_alike(
    entity_type: ListEntityType, spellings: list[str], canonical: str
) -> None:
    assert {normalise(entity_type, raw) for raw in spellings} == {canonical}


INVALID = [
    (T.EMAIL, "joao.silva@"),
    (T.EMAIL, "joao silva@example.com"),
    (T.EMAIL, "joao.silva.example.com"),
    (T.EMAIL, "joao@localhost"),
    (T.EMAIL_DOMAIN, "-bad-.com"),
    (T.PHONE, "12345"),
    (T.PHONE, "(11) 8765-43219"),
    (T.PHONE, "(10) 98765-4321"),
    (T.PHONE, "+55 11 8765-432"),
    (T.PHONE, "ligue 11 98765-4321"),
    (T.DOCUMENT, "529.982.247-24"),
    (T.DOCUMENT, "111.111.111-11"),
    (T.DOCUMENT, "11.222.333/0001-82"),
    (T.DOCUMENT, "5299822472"),
    (T.IP, "999.1.1.1"),
    (T.IP, "203.0.113"),
    (T.IP_RANGE, "10.0.0.0/33"),
    (T.IP_RANGE, "10.0.0.7/32"),
    (T.IP_RANGE, "2001:db8::1/128"),
    (T.WALLET, "0xZZ"),
    (T.WALLET, "3"),
    (T.WALLET, "1Fq7mXvR2aT9bKcN4dWe8hYj ZpL3sGu6Qx"),
    (T.PIX_KEY, "joaosilva"),
    (T.PIX_KEY, "+55 11 98765-4321 ramal 2"),
    (T.PIX_KEY, "529.982.247-24"),
    (T.USER, "two words"),
    (T.BANK_ACCOUNT, "   "),
    (T.USER, "u-1\x00"),
    (T.USER, "u" * 300),
]


@pytest.mark.parametrize(("entity_type", "raw"), INVALID)
def test_invalid_values_are_refused_with_one_masked_line(
    entity_type: ListEntityType, raw: str
) -> None:
    with pytest.raises(InvalidListValue) as refused:
        normalise(entity_type, raw)
    message = str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert refused.value.entity_type is entity_type
    assert message.startswith(f"{entity_type} '")
    assert "\n" not in message and "\x00" not in message
    assert not raw.strip() or raw.strip() not in message
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_refused_document_says_why() -> None:
    with pytest.raises(
        InvalidListValue, match=r"^document '\*\*\*\.\*\*\*\.111-11' is not a valid"
    ):
        normalise(T.DOCUMENT, "111.111.111-11")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("a@b.com", PixKeyKind.EMAIL),
        ("+5511987654321", PixKeyKind.PHONE),
        ("(11) 98765-4321", PixKeyKind.PHONE),
        ("11987654321", PixKeyKind.PHONE),
        ("52998224725", PixKeyKind.CPF),
        ("529.982.247-24", PixKeyKind.CPF),  # punctuated like a CPF: refused as one, not a phone
        ("11.222.333/0001-81", PixKeyKind.CNPJ),
        ("123e4567-e89b-42d3-a456-426614174000", PixKeyKind.EVP),
        ("joaosilva", None),
    ],
)
def test_pix_key_kinds(raw: str, kind: PixKeyKind | None) -> None:
    assert pix_key_kind(raw) is kind


def test_keyed_hash_is_hmac_sha256_of_the_value_as_upstream_hashes_it() -> None:
    digest = keyed_hash("foo@example.com", KEY)
    expected = hmac.new(KEY, b"foo@example.com", hashlib.sha256).hexdigest()
    assert digest == expected
    assert TypeAdapter(HashedIdentity).validate_python(digest) == digest


def test_hashes_depend_on_the_key() -> None:
    assert keyed_hash("52998224725", KEY) != keyed_hash("52998224725", b"other-key")


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        keyed_hash("foo@example.com", b"")


def test_spellings_of_an_email_look_up_the_same_hashes() -> None:
    assert lookup_hashes(T.EMAIL, " Foo@Example.COM ", KEY) == lookup_hashes(
        T.EMAIL, "foo@example.com", KEY
    )


def test_an_email_is_also_looked_up_by_its_domains() -> None:
    found = lookup_hashes(T.EMAIL, "ana@mail.tempmail.org", KEY)
    assert found == [
        (T.EMAIL, keyed_hash("ana@mail.tempmail.org", KEY)),
        (T.EMAIL_DOMAIN, keyed_hash("mail.tempmail.org", KEY)),
        (T.EMAIL_DOMAIN, keyed_hash("tempmail.org", KEY)),
    ]
    listed = lookup_hashes(T.EMAIL_DOMAIN, "@TempMail.org", KEY)
    assert listed[0] in found


@pytest.mark.parametrize(
    ("raw", "also"),
    [
        ("Maria@Example.com", [(T.EMAIL, "maria@example.com"), (T.EMAIL_DOMAIN, "example.com")]),
        ("(11) 98765-4321", [(T.PHONE, "+5511987654321")]),
        ("529.982.247-25", [(T.DOCUMENT, "52998224725")]),
        ("11.222.333/0001-81", [(T.DOCUMENT, "11222333000181")]),
        ("123e4567-e89b-42d3-a456-426614174000", []),
    ],
)
def test_a_pix_key_is_also_looked_up_as_what_it_is(
    raw: str, also: list[tuple[ListEntityType, str]]
) -> None:
    pix = (T.PIX_KEY, keyed_hash(normalise(T.PIX_KEY, raw), KEY))
    expected = [pix] + [(kind, keyed_hash(value, KEY)) for kind, value in also]
    assert lookup_hashes(T.PIX_KEY, raw, KEY) == expected


def test_an_ip_is_looked_up_by_its_own_hash_only() -> None:
    assert lookup_hashes(T.IP, "::ffff:203.0.113.7", KEY) == [
        (T.IP, keyed_hash("203.0.113.7", KEY))
    ]


def test_lookups_refuse_invalid_values() -> None:
    with pytest.raises(InvalidListValue):
        lookup_hashes(T.DOCUMENT, "111.111.111-11", KEY)


def _index() -> CidrIndex:
    index = CidrIndex()
    index.add("tor", "185.220.101.0/24")
    index.add("hosting", "185.220.0.0/16")
    index.add("hosting", "185.220.0.0/16")
    index.add("private", "10.1.2.3/8")
    index.add("v6-doc", "2001:db8::/32")
    index.add("v6-site", "2001:db8:1234::/48")
    return index


@pytest.mark.parametrize(
    ("ip", "ranges"),
    [
        ("185.220.101.7", ["tor", "hosting"]),
        ("185.220.101.0", ["tor", "hosting"]),
        ("185.220.101.255", ["tor", "hosting"]),
        ("185.220.102.1", ["hosting"]),
        ("185.221.0.1", []),
        ("10.255.255.255", ["private"]),
        ("11.0.0.0", []),
        ("::ffff:10.0.0.1", ["private"]),
        ("2001:db8:1234:5678::1", ["v6-site", "v6-doc"]),
        ("2001:db8:ffff::1", ["v6-doc"]),
        ("2001:db9::1", []),
    ],
)
def test_cidr_index_finds_containing_ranges_most_specific_first(ip: str, ranges: list[str]) -> None:
    assert _index().contains(ip) == ranges


def test_an_ipv4_address_is_not_in_an_ipv6_range() -> None:
    index = CidrIndex()
    index.add("all-v6", "::/0")
    assert index.contains("203.0.113.7") == []
    assert index.contains("2001:db8::1") == ["all-v6"]


def test_cidr_index_refuses_single_addresses_and_bad_input() -> None:
    index = CidrIndex()
    with pytest.raises(InvalidListValue, match="list it as an ip"):
        index.add("one-host", "198.51.100.4/32")
    with pytest.raises(InvalidListValue):
        index.add("bad", "198.51.100.0/40")
    with pytest.raises(InvalidListValue):
        index.contains("not-an-ip")
