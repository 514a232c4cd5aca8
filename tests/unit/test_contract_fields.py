"""Contract fields of the inputs: logins with no account, identities on gift events, the
refund's destination, user agents; each decoded, validated and screened like the others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from engine.admission import subject_of, user_of
from engine.identities import normalise
from engine.lists import ListView, keyed_hash, list_features, new_entry
from schemas.codec import WireCodec
from schemas.models import ListEntityType, ListKind, ListSeverity, ListSource, LoginEvent
from tests import factories
from tests.factories import SEED_RULES, decide_all

KEY = b"k"
CODEC = WireCodec()


def _hash(entity_type: ListEntityType, raw: str) -> str:
    """How upstream hashes an identity: the keyed hash of its normalised form."""
    return keyed_hash(normalise(entity_type, raw), KEY)


def _listed(entity_type: ListEntityType, raw: str) -> ListView:
    view = ListView()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    view.apply(
        new_entry(
            ListKind.BLOCK,
            entity_type,
            raw,
            KEY,
            ListSeverity.HIGH,
            ListSource.MANUAL,
            "fraud ring",
            "analyst-1",
            at,
        )
    )
    return view


def test_a_login_for_an_identifier_with_no_account_is_its_own_subject() -> None:
    typed = _hash(ListEntityType.EMAIL, "nobody@example.com")
    login = factories.login(user_id=None, login_identifier_hash=typed)
    assert subject_of(login).key == f"user:login-id:{typed}" and user_of(login).endswith(typed)
    assert CODEC.decode(CODEC.encode(login), (LoginEvent,)) == login
    (decided,) = decide_all([login])
    assert decided.verdict.value in {"ALLOW", "REVIEW", "BLOCK"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user_id": None}, "login_identifier_hash when none"),
        (
            {"user_id": None, "login_identifier_hash": "ab" * 32, "success": True},
            "cannot succeed",
        ),
    ],
)
def test_a_login_names_an_account_or_what_was_typed(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        factories.login(**fields)


def test_the_identifier_typed_is_screened_as_an_email_phone_or_document() -> None:
    view = _listed(ListEntityType.DOCUMENT, "123.456.789-09")
    typed = _hash(ListEntityType.DOCUMENT, "123.456.789-09")
    login = factories.login(user_id=None, login_identifier_hash=typed)
    assert list(list_features(view.hits(login, KEY))) == [
        "list.block.document.HIGH.MANUAL." + view.hits(login, KEY)[0].masked_value
    ]


@pytest.mark.parametrize(
    ("field", "entity_type", "raw"),
    [
        ("email_hash", ListEntityType.EMAIL, "ana@example.com"),
        ("phone_hash", ListEntityType.PHONE, "+55 11 99999-0000"),
        ("document_hash", ListEntityType.DOCUMENT, "123.456.789-09"),
        ("refund_destination_hash", ListEntityType.PIX_KEY, "ana@example.com"),
    ],
)
def test_listed_people_are_found_on_gift_events(
    field: str, entity_type: ListEntityType, raw: str
) -> None:
    view = _listed(entity_type, raw)
    gift = factories.gift(**{field: _hash(entity_type, raw)})
    assert view.hits(gift, KEY), f"{field} not screened"
    assert not view.hits(factories.gift(), KEY)


def test_new_fields_travel_in_avro() -> None:
    gift = factories.gift(
        user_agent="Mozilla/5.0", email_hash="ab" * 32, refund_destination_hash="cd" * 32
    )
    tx = factories.transaction(user_agent="okhttp/4.12")
    assert CODEC.decode(CODEC.encode(gift), (type(gift),)) == gift
    assert CODEC.decode(CODEC.encode(tx), (type(tx),)) == tx
    assert SEED_RULES.version  # the seed profile loads with the new contract
