"""Block/allow lists: matching events by keyed hash, scoring hits as the seed says, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from config.rules import load_rules
from engine.audit import link_record
from engine.capypay import fraud_block_hits
from engine.decide import decide_event
from engine.identities import keyed_hash, normalise
from engine.lists import (
    ListView,
    event_identities,
    judge_hits,
    links_for,
    list_features,
    new_entry,
    removal_of,
)
from engine.replay import Replay
from engine.scoring import assess
from engine.velocity import VelocityState
from schemas.models import (
    DecisionAction,
    GiftEvent,
    ListEntityType,
    ListEntry,
    ListKind,
    ListSeverity,
    ListSource,
    Verdict,
)
from tests import factories

RULES = load_rules()
KEY = b"list-test-key"
AT = factories.NOW - timedelta(days=1)
WALLET = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"


def _entry(
    entity_type: ListEntityType,
    raw: str,
    severity: ListSeverity = ListSeverity.HIGH,
    kind: ListKind = ListKind.BLOCK,
    expires_at: datetime | None = None,
) -> ListEntry:
    return new_entry(
        kind, entity_type, raw, KEY, severity, ListSource.MANUAL, "test", "tester", AT, expires_at
    )


def _view(*entries: ListEntry) -> ListView:
    view = ListView()
    for entry in entries:
        view.apply(entry)
    return view


def _upstream_hash(entity_type: ListEntityType, raw: str) -> str:
    """What an upstream service puts in an event's *_hash field."""
    return keyed_hash(normalise(entity_type, raw), KEY)


def test_entries_hold_hashes_and_masks_never_the_value() -> None:
    entry = _entry(ListEntityType.EMAIL, " Fraudster@Example.COM ")
    dumped = entry.model_dump_json().lower()
    assert "fraudster" not in dumped
    assert entry.value_key == _upstream_hash(ListEntityType.EMAIL, "fraudster@example.com")
    assert entry.masked_value.endswith("@example.com")


def test_an_event_matches_by_clear_values_and_upstream_hashes() -> None:
    view = _view(
        _entry(ListEntityType.WALLET, WALLET.lower(), ListSeverity.CRITICAL),
        _entry(ListEntityType.EMAIL, "ana@example.com", ListSeverity.LOW),
        _entry(ListEntityType.DOCUMENT, "529.982.247-25", ListSeverity.MEDIUM),
        _entry(ListEntityType.IP_RANGE, "185.220.101.0/24", ListSeverity.HIGH),
    )
    tx = factories.transaction(
        counterparty_pix_key_hash=None,
        counterparty_wallet=WALLET,
        email_hash=_upstream_hash(ListEntityType.EMAIL, "ana@example.com"),
        document_hash=_upstream_hash(ListEntityType.DOCUMENT, "52998224725"),
        ip="185.220.101.9",
    )
    assert list_features(view.hits(tx, KEY)) == {
        "list.block.document.MEDIUM.MANUAL.***.***.247-25": 1,
        "list.block.email.LOW.MANUAL.a***@example.com": 1,
        "list.block.ip_range.HIGH.MANUAL.185.220.***.***/24": 1,
        "list.block.wallet.CRITICAL.MANUAL.0x7f36...be1b": 1,
    }
    assert view.hits(factories.transaction(ip="8.8.8.8"), KEY) == []


def test_a_hashed_pix_key_matches_the_listed_document_it_is() -> None:
    view = _view(_entry(ListEntityType.DOCUMENT, "52998224725"))
    gift = factories.gift(
        recipient_key_hash=_upstream_hash(ListEntityType.PIX_KEY, "529.982.247-25")
    )
    assert list_features(view.hits(gift, KEY)) == {
        "list.block.document.HIGH.MANUAL.***.***.247-25": 1
    }


def test_removed_and_expired_entries_no_longer_match() -> None:
    entry = _entry(ListEntityType.USER, "u-9", expires_at=AT + timedelta(hours=1))
    view = _view(entry)
    early = factories.transaction(user_id="u-9", occurred_at=AT + timedelta(minutes=30))
    late = factories.transaction(user_id="u-9", occurred_at=AT + timedelta(hours=2))
    assert len(view.hits(early, KEY)) == 1 and view.hits(late, KEY) == []
    view.apply(removal_of(entry, "tester", AT + timedelta(minutes=40)))
    assert view.hits(early, KEY) == []
    removed = view.get(entry.entry_id)
    assert removed is not None and removed.removed_by == "tester"


def test_an_invalid_clear_value_in_an_event_is_not_a_hit_nor_a_crash() -> None:
    tx = factories.transaction(counterparty_pix_key_hash=None, counterparty_wallet="not a wallet!")
    assert all(kind is not ListEntityType.WALLET for kind, _ in event_identities(tx, KEY))


@pytest.mark.parametrize(
    ("features", "points", "code"),
    [
        ({"list.block.user.LOW": 1}, 10, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.MEDIUM": 1}, 30, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.HIGH": 1}, 60, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.CRITICAL": 1}, 100, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.HIGH": 1, "list.block.email.LOW": 2}, 80, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.HIGH": 1, "list.block.email.HIGH": 5}, 100, "BLACKLIST_LIST_HIT"),
        ({"list.block.user.CRITICAL": 1, "list.allow.email.LOW": 1}, 0, "WHITELIST_OVERRIDE"),
    ],
)
def test_hits_score_as_the_seed_says(features: dict[str, int], points: int, code: str) -> None:
    """10/30/60/100 by severity, + 10 per additional match, max 100; allow overrides."""
    (reason,) = judge_hits(features, RULES.lists).reasons
    assert (reason.code, reason.points) == (code, points)


@pytest.mark.parametrize(
    ("features", "reasons", "verdict"),
    [
        ({"subject.blocked": 1}, [("BLACKLIST_FRAUD_BLOCK", 60)], Verdict.REVIEW),
        (
            {"subject.blocked": 1, "entity.blocked": 1},
            [("BLACKLIST_FRAUD_BLOCK", 60), ("BLACKLIST_ENTITY_BLOCK", 10)],
            Verdict.REVIEW,
        ),
        (
            {"subject.blocked": 1, "list.block.user.MEDIUM": 1},
            [("BLACKLIST_FRAUD_BLOCK", 60), ("BLACKLIST_LIST_HIT", 10)],
            Verdict.BLOCK,  # 70 points; MEDIUM blocks a transaction outright
        ),
        (
            {"entity.blocked": 1, "list.block.user.CRITICAL": 1, "list.block.email.LOW": 1},
            [("BLACKLIST_ENTITY_BLOCK", 0), ("BLACKLIST_LIST_HIT", 100)],
            Verdict.BLOCK,
        ),
        (
            {"subject.blocked": 1, "entity.blocked": 1, "list.allow.user.LOW": 1},
            [("WHITELIST_OVERRIDE", 0)],
            Verdict.ALLOW,
        ),
    ],
)
def test_fraud_blocks_are_matches_of_the_seed_formula(
    features: dict[str, int], reasons: list[tuple[str, int]], verdict: Verdict
) -> None:
    """A fraud block is a HIGH match: the most severe match's points, + 10 per further one
    (max 100), and an allow-list hit overrides it like any block-list hit."""
    assessment = assess(factories.transaction(network_flags=[]), RULES, features)
    blacklist = [
        (r.code, r.points)
        for r in assessment.reasons
        if r.code.startswith(("BLACKLIST_", "WHITELIST_"))
    ]
    assert sorted(blacklist) == sorted(reasons)
    assert assessment.verdict is verdict


def test_an_override_of_fraud_blocks_names_them() -> None:
    features = {"subject.blocked": 1, "list.allow.user.LOW.MANUAL.***1": 1}
    (override,) = judge_hits(
        features, RULES.lists, fraud_block_hits(features, RULES.capypay)
    ).reasons
    assert override.code == "WHITELIST_OVERRIDE"
    assert override.detail == (
        "allow-listed user ***1 LOW (MANUAL) overrides block-list hits: "
        "user is under an active fraud block"
    )


def test_a_whitelisted_user_is_not_blocked_by_a_critical_hit() -> None:
    listed = {"list.block.wallet.CRITICAL": 1}
    blocked = decide_event(
        VelocityState(), factories.transaction(network_flags=[]), RULES, lists=listed
    )
    assert blocked.assessment.verdict is Verdict.BLOCK
    assert DecisionAction.FREEZE_ACCOUNT in blocked.actions
    allowed = decide_event(
        VelocityState(),
        factories.transaction(network_flags=[]),
        RULES,
        lists={**listed, "list.allow.user.LOW.MANUAL.***1": 1},
    )
    assert allowed.assessment.verdict is Verdict.ALLOW
    (override,) = [r for r in allowed.assessment.reasons if r.code == "WHITELIST_OVERRIDE"]
    assert "allow-listed user ***1 LOW (MANUAL) overrides block-list hits: wallet.CRITICAL" in (
        override.detail
    )


@pytest.mark.parametrize(
    ("severity", "tx_verdict", "login_verdict"),
    [
        (ListSeverity.LOW, Verdict.ALLOW, Verdict.ALLOW),
        (ListSeverity.MEDIUM, Verdict.BLOCK, Verdict.REVIEW),
        (ListSeverity.HIGH, Verdict.BLOCK, Verdict.REVIEW),
        (ListSeverity.CRITICAL, Verdict.BLOCK, Verdict.BLOCK),
    ],
)
def test_severity_sets_what_a_hit_blocks(
    severity: ListSeverity, tx_verdict: Verdict, login_verdict: Verdict
) -> None:
    """LOW monitors, MEDIUM blocks transactions, HIGH also alerts, CRITICAL blocks everything."""
    hit = {f"list.block.user.{severity.value}": 1}
    tx = decide_event(VelocityState(), factories.transaction(network_flags=[]), RULES, lists=hit)
    login = decide_event(
        VelocityState(), factories.login(network_flags=[], success=True), RULES, lists=hit
    )
    assert (tx.assessment.verdict, login.assessment.verdict) == (tx_verdict, login_verdict)
    alerted = DecisionAction.INTERNAL_ALERT in tx.actions
    assert alerted == (severity in (ListSeverity.HIGH, ListSeverity.CRITICAL))


def test_an_event_email_domain_matches_listed_disposable_domains_and_their_subdomains() -> None:
    view = _view(_entry(ListEntityType.EMAIL_DOMAIN, "tempmail.org", ListSeverity.LOW))
    sub = factories.login(email_domain="mx.tempmail.org")
    assert list_features(view.hits(sub, KEY)) == {"list.block.email_domain.LOW.MANUAL.te***.org": 1}
    assert view.hits(factories.login(email_domain="gmail.com"), KEY) == []


def test_a_hit_shows_its_mask_severity_and_source_in_the_reason() -> None:
    view = _view(_entry(ListEntityType.WALLET, WALLET, ListSeverity.CRITICAL))
    tx = factories.transaction(counterparty_pix_key_hash=None, counterparty_wallet=WALLET)
    (reason,) = judge_hits(list_features(view.hits(tx, KEY)), RULES.lists).reasons
    assert reason.detail == "block-list hits: wallet 0x7f36...be1b CRITICAL (MANUAL)"
    assert WALLET.lower() not in reason.detail.lower()


LISTED_EMAIL = "mallory@example.com"


def _bare_gift(giver: str) -> GiftEvent:
    """A gift event naming its giver only: no e-mail, phone or document."""
    return factories.gift(giver_user_id=giver, email_hash=None, phone_hash=None, document_hash=None)


def test_a_listed_email_on_a_user_s_own_payment_lists_the_user_while_it_lasts() -> None:
    origin = _entry(ListEntityType.EMAIL, LISTED_EMAIL, ListSeverity.HIGH)
    view = _view(origin)
    tx = factories.transaction(
        user_id="mallory", email_hash=_upstream_hash(ListEntityType.EMAIL, LISTED_EMAIL)
    )
    (link,) = links_for(tx, view.hits(tx, KEY), view, KEY)
    assert (link.entity_type, link.severity, link.source) == (
        ListEntityType.USER,
        ListSeverity.HIGH,
        ListSource.AUTOMATED,
    )
    assert link.linked_from == origin.entry_id and "mallory" not in link.model_dump_json()
    assert view.hits(_bare_gift("mallory"), KEY) == []
    view.apply(link)
    assert list_features(view.hits(_bare_gift("mallory"), KEY)) == {
        "list.block.user.HIGH.AUTOMATED.***ory": 1
    }
    # One listing, one match: beside the e-mail itself the derived entry is not counted.
    assert view.hits(tx, KEY) == [origin]
    # Known already: not derived again, even once an analyst has removed it.
    assert links_for(tx, view.hits(tx, KEY), view, KEY) == []
    view.apply(removal_of(link, "analyst", AT))
    assert links_for(tx, view.hits(tx, KEY), view, KEY) == []
    assert view.hits(_bare_gift("mallory"), KEY) == []


def test_a_derived_entry_ends_with_the_entry_it_follows() -> None:
    origin = _entry(ListEntityType.DOCUMENT, "52998224725", ListSeverity.MEDIUM)
    view = _view(origin)
    tx = factories.transaction(
        user_id="mallory", document_hash=_upstream_hash(ListEntityType.DOCUMENT, "52998224725")
    )
    for link in links_for(tx, view.hits(tx, KEY), view, KEY):
        view.apply(link)
    assert len(view.hits(_bare_gift("mallory"), KEY)) == 1
    assert [e.linked_from for e in view.listing(ListKind.BLOCK, ListEntityType.USER, _user_key())]
    view.apply(removal_of(origin, "analyst", AT))
    assert view.hits(_bare_gift("mallory"), KEY) == []


def _user_key() -> str:
    return keyed_hash(normalise(ListEntityType.USER, "mallory"), KEY)


def test_only_the_user_s_own_identities_list_the_user() -> None:
    """A listed e-mail that is the payee's PIX key, a failed login typing it, a gift event
    (whose identities may be its redeemer's) or an allow entry list nobody."""
    email_hash = _upstream_hash(ListEntityType.EMAIL, LISTED_EMAIL)
    view = _view(
        _entry(ListEntityType.EMAIL, LISTED_EMAIL),
        _entry(ListEntityType.PHONE, "+5511987654321", kind=ListKind.ALLOW),
    )
    not_own = [
        factories.transaction(user_id="payer", counterparty_pix_key_hash=email_hash),
        factories.login(user_id="victim", success=False, email_hash=email_hash),
        factories.gift(giver_user_id="giver", email_hash=email_hash),
        factories.transaction(
            user_id="vip", phone_hash=_upstream_hash(ListEntityType.PHONE, "+5511987654321")
        ),
    ]
    for event in not_own:
        assert links_for(event, view.hits(event, KEY), view, KEY) == []
    login = factories.login(user_id="mallory", success=True, email_hash=email_hash)
    assert len(links_for(login, view.hits(login, KEY), view, KEY)) == 1


def test_a_replay_screens_a_listed_person_s_bare_gift_and_audits_the_link() -> None:
    origin = _entry(ListEntityType.EMAIL, LISTED_EMAIL, ListSeverity.HIGH)
    replay = Replay(RULES, KEY, _view(origin), learn=False)
    tx = factories.transaction(
        user_id="mallory", email_hash=_upstream_hash(ListEntityType.EMAIL, LISTED_EMAIL)
    )
    paid = replay.step(tx)
    (link,) = paid.links
    (audit,) = paid.link_audits
    assert (audit.action, audit.actor.id, audit.details.correlation_id) == (
        "blacklist_add",
        "engine",
        tx.event_id,
    )
    assert audit.audit_id == link_record(link, tx.event_id).audit_id  # the same when re-decided
    assert audit.details.new_state is not None and link.entry_id in audit.details.new_state
    gift = replay.step(_bare_gift("mallory"))
    assert gift.decision.decision is Verdict.BLOCK
    assert "list.block.user.HIGH.AUTOMATED.***ory" in gift.decision.features
    assert gift.links == [] and replay.step(tx).links == []
