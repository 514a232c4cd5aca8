"""Masks: the CapyPay ``dataMasking`` shapes, one per list type, never the whole value."""

from __future__ import annotations

import pytest

from engine.masking import (
    mask_document,
    mask_email,
    mask_ip,
    mask_name,
    mask_phone,
    mask_pix_key,
    mask_text,
    mask_value,
    mask_wallet,
)
from schemas.models import ListEntityType

EXAMPLES = {
    ListEntityType.USER: ("user-829301", "***9301"),
    ListEntityType.WALLET: ("0x7f367cc41522ce07553e823bf3be79a889debe1b", "0x7f36...be1b"),
    ListEntityType.EMAIL: ("usuario@domain.com", "us***@domain.com"),
    ListEntityType.EMAIL_DOMAIN: ("guerrillamail.com", "gu***.com"),
    ListEntityType.IP: ("192.168.10.20", "192.168.***.***"),
    ListEntityType.IP_RANGE: ("185.220.101.0/24", "185.220.***.***/24"),
    ListEntityType.PHONE: ("+5511987651234", "***-***-1234"),
    ListEntityType.DOCUMENT: ("52998224725", "***.***.247-25"),
    ListEntityType.BANK_ACCOUNT: ("341 1234 56789-X", "***89-X"),
    ListEntityType.PIX_KEY: ("11222333000181", "**.***.***/0001-81"),
}


@pytest.mark.parametrize(("entity_type", "value", "masked"), [(t, *v) for t, v in EXAMPLES.items()])
def test_each_list_type_has_its_mask(entity_type: ListEntityType, value: str, masked: str) -> None:
    assert mask_value(entity_type, value) == masked


def test_the_examples_cover_every_list_type() -> None:
    assert set(EXAMPLES) == set(ListEntityType)


def test_an_unknown_type_hides_the_value_whole() -> None:
    assert mask_value("passport", "X1234567") == "***"


def test_the_seed_shapes() -> None:
    assert mask_email("usuario@domain.com") == "us***@domain.com"
    assert mask_wallet("0x1234567890abcdef1234567890abcdef1234abcd") == "0x1234...abcd"
    assert mask_phone("(11) 98765-1234") == "***-***-1234"
    assert mask_document("123.456.123-45") == "***.***.123-45"
    assert mask_ip("192.168.0.1") == "192.168.***.***"


def test_documents_keep_their_last_digits_formatted() -> None:
    assert mask_document("529.982.247-25") == "***.***.247-25"
    assert mask_document("11.222.333/0001-81") == "**.***.***/0001-81"
    assert mask_document("12.abc.345/01de-35") == "**.***.***/01DE-35"


def test_ipv6_keeps_two_hextets_and_ranges_their_prefix() -> None:
    assert mask_ip("2001:0db8:85a3::8a2e:370:7334") == "2001:db8:***:***:***:***:***:***"
    assert mask_value("ip_range", "2001:db8::/32") == "2001:db8:***:***:***:***:***:***/32"


def test_names_keep_initials() -> None:
    assert mask_name("João Silva") == "J*** S****"
    assert mask_name("Ana M Souza") == "A** * S****"
    assert mask_name("   ") == "***"


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        ("maria.souza@example.com.br", "ma***@example.com.br"),
        ("+5521998761234", "***-***-1234"),
        ("529.982.247-25", "***.***.247-25"),
        ("11222333000181", "**.***.***/0001-81"),
        ("123e4567-e89b-42d3-a456-426614174000", "123e...4000"),
    ],
)
def test_pix_keys_are_masked_as_what_they_are(key: str, masked: str) -> None:
    assert mask_pix_key(key) == masked


SHORT_AND_ODD = ["a", "ab", "7", "42", "abc", "12345", "a@b", "x@y.io", "1.2.3.4", "::1", "0x1"]


@pytest.mark.parametrize("entity_type", list(ListEntityType))
@pytest.mark.parametrize("value", SHORT_AND_ODD + [value for value, _ in EXAMPLES.values()])
def test_no_mask_shows_the_whole_value(entity_type: ListEntityType, value: str) -> None:
    masked = mask_value(entity_type, value)
    assert value not in masked
    assert masked


def test_free_text_keeps_its_words_and_masks_every_shape_of_personal_data() -> None:
    text = (
        "Cliente ligou de 11 98765-4321 (+55 21 3456-7890), e-mail ana.souza@bank.com.br, "
        "CPF 529.982.247-25, CNPJ 11.222.333/0001-81, cartão 4111 1111 1111 1111, "
        "IP 203.0.113.7 e 2001:db8::7, conta 12345678901234. Pediu estorno de R$ 1.500,00 "
        "em 22/11/2026 às 10:30."
    )
    masked = mask_text(text)
    for personal in (
        "98765-4321",
        "3456-7890",
        "ana.souza",
        "529.982",
        "11.222.333",
        "4111 1111 1111",
        "203.0.113.7",
        "2001:db8::7",
        "12345678901234",
    ):
        assert personal not in masked, personal
    for kept in ("Cliente ligou de", "@bank.com.br", "R$ 1.500,00", "22/11/2026 às 10:30"):
        assert kept in masked, kept
    assert mask_text("nada pessoal aqui") == "nada pessoal aqui"
