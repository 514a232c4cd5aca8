"""Frozen accounts: a CRITICAL list hit freezes its user, whose next events are blocked until
an analyst unfreezes the account; a re-delivered older event does not undo that review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.scoring import Scorer, SharedViews
from config.rules import load_rules
from engine.accounts import ACCOUNT_FROZEN, FROZEN_FEATURE, AccountView, manual_change
from engine.admission import subject_of
from engine.decide import decide_event
from engine.lists import new_entry
from engine.velocity import VelocityState
from schemas.codec import WireCodec
from schemas.models import (
    AccountState,
    AuditRecord,
    Decision,
    DecisionAction,
    ListEntityType,
    ListKind,
    ListSeverity,
    ListSource,
)
from streams.partitioning import owner_partition
from streams.topics import Topics
from tests import factories

RULES = load_rules()
HASH_KEY = b"unit-test-key"
TOPICS = Topics("unit")
CODEC = WireCodec()
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
WALLET = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"  # a default CRITICAL (OFAC) entry


def _decision(user: str, at: datetime, actions: list[DecisionAction]) -> Decision:
    return Decision(
        event_id=f"e-{user}-{int(at.timestamp())}",
        event_kind="transaction",
        event_type="CRYPTO_SWAP",
        subject_type="user",
        subject_id=user,
        user_id=user,
        score=100,
        band="CRITICAL",
        decision="BLOCK",
        actions=actions,
        rule_version="v",
        event_occurred_at=at,
        decided_at=at,
        latency_ms=1,
    )


def test_a_decision_asking_to_freeze_freezes_once() -> None:
    view = AccountView()
    asked = _decision("ana", AT, [DecisionAction.INTERNAL_ALERT, DecisionAction.FREEZE_ACCOUNT])
    freeze = view.freeze_for(asked)
    assert freeze is not None and freeze.frozen and freeze.event_id == asked.event_id
    assert freeze.changed_at == AT and freeze.changed_by == "engine"
    assert view.freeze_for(_decision("bia", AT, [DecisionAction.INTERNAL_ALERT])) is None
    view.apply(freeze)
    assert view.freeze_for(asked) is None  # already frozen


def test_an_analyst_s_unfreeze_holds_against_older_events_but_not_newer_ones() -> None:
    view = AccountView()
    view.apply(manual_change("ana", True, "hit", "engine", AT))
    view.apply(manual_change("ana", False, "reviewed: false positive", "analyst-1", AT))
    asks = [DecisionAction.FREEZE_ACCOUNT]
    assert view.frozen == {}
    assert view.freeze_for(_decision("ana", AT - timedelta(minutes=5), asks)) is None
    assert view.freeze_for(_decision("ana", AT + timedelta(minutes=5), asks)) is not None


def test_a_gift_is_stopped_by_its_giver_or_its_redeemer() -> None:
    view = AccountView()
    view.apply(manual_change("redeemer-1", True, "hit", "analyst-1", AT))
    redemption = factories.gift(
        event_type="redeem_attempt", amount_cents=None, code_correct=True
    ).model_copy(update={"redeemer_user_id": "redeemer-1"})
    assert view.frozen_user(redemption) == "redeemer-1"
    assert view.frozen_user(factories.gift()) is None


def test_a_frozen_account_s_event_is_blocked_and_decided_the_same_when_re_delivered() -> None:
    state = VelocityState()
    event = factories.transaction(amount_cents=1_000)
    first = decide_event(state, event, RULES, account_frozen=True)
    assert first.assessment.verdict.value == "BLOCK"
    assert first.assessment.features[FROZEN_FEATURE] == 1
    assert [r.code for r in first.assessment.reasons][-1] == ACCOUNT_FROZEN
    again = decide_event(state, event, RULES, account_frozen=False)  # unfrozen meanwhile
    assert again.assessment == first.assessment
    plain = decide_event(VelocityState(), factories.transaction(amount_cents=1_000), RULES)
    assert plain.assessment.verdict.value == "ALLOW"


def _scorer() -> Scorer:
    views = SharedViews.starting(RULES, HASH_KEY)
    wallet = new_entry(
        ListKind.BLOCK,
        ListEntityType.WALLET,
        WALLET,
        HASH_KEY,
        ListSeverity.CRITICAL,
        ListSource.OFAC,
        "OFAC SDN",
        "test",
        AT - timedelta(days=1),
    )
    views.lists.apply(wallet)
    return Scorer(TOPICS, CODEC, lambda: AT, 4, {}, views, HASH_KEY, None, 1_000)


class _Message:
    def __init__(self, topic: str, key: bytes, value: bytes) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.partition = owner_partition(key, 4)
        self.timestamp, self.offset = AT.timestamp(), 0


class _Record:
    def __init__(self, message: _Message) -> None:
        self.message = message


def test_a_critical_hit_freezes_the_user_whose_next_plain_transaction_is_blocked() -> None:
    scorer = _scorer()
    to_sanctioned = factories.transaction(
        user_id="u-frozen", counterparty_wallet=WALLET, occurred_at=AT - timedelta(minutes=2)
    )
    plain = factories.transaction(
        user_id="u-frozen", amount_cents=1_500, occurred_at=AT - timedelta(minutes=1)
    )
    batch = scorer.begin(frozenset(range(4)))
    for event in (to_sanctioned, plain):
        key = subject_of(event).key.encode()
        record = _Record(_Message(TOPICS.transactions, key, CODEC.encode(event)))
        scorer.handle(batch, record, RULES)  # type: ignore[arg-type]

    decisions = [
        CODEC.decode(value, (Decision,))
        for topic, _, value, _, _ in batch.outputs
        if topic == TOPICS.decisions
    ]
    assert [DecisionAction.FREEZE_ACCOUNT in d.actions for d in decisions] == [True, False]
    assert decisions[1].decision.value == "BLOCK"
    assert decisions[1].reasons[-1].code == ACCOUNT_FROZEN
    assert decisions[1].score < 85  # blocked for the freeze, not for its own risk
    (state,) = [
        CODEC.decode(value, (AccountState,))
        for topic, key, value, _, _ in batch.outputs
        if topic == TOPICS.account_states and key == b"u-frozen"
    ]
    assert state.frozen and state.event_id == to_sanctioned.event_id
    audits = [
        CODEC.decode(value, (AuditRecord,))
        for topic, _, value, _, _ in batch.outputs
        if topic == TOPICS.audit_intake
    ]
    freeze_audit = next(a for a in audits if a.action == "account_freeze")
    assert freeze_audit.audit_id == f"freeze-{to_sanctioned.event_id}"
    assert freeze_audit.compliance.data_subject == "u-frozen"
    assert WALLET.lower() not in freeze_audit.model_dump_json().lower()
