"""Frozen accounts (pure): the seed's CRITICAL severity, "bloquear tudo + congelar conta".

A decision that asks to freeze its user's account (``FREEZE_ACCOUNT``, from a CRITICAL
block-list hit) freezes it: an ``AccountState`` record on the compacted account-states
topic, which every worker follows into an :class:`AccountView`. From then on every event of
that user is blocked (``ACCOUNT_FROZEN``) until an analyst unfreezes the account through the
admin API. Checking an event costs one dict lookup (two for a redemption: giver and
redeemer).

>>> from datetime import UTC, datetime
>>> view = AccountView()
>>> view.apply(manual_change("u-1", True, "chargeback ring", "analyst-1",
...     datetime(2026, 1, 1, tzinfo=UTC)))
>>> from tests import factories
>>> view.frozen_user(factories.transaction(user_id="u-1"))
'u-1'
>>> view.frozen_user(factories.transaction(user_id="u-2")) is None
True
"""

from __future__ import annotations

from datetime import datetime

from schemas.models import (
    AccountState,
    Decision,
    DecisionAction,
    GiftEvent,
    InputEvent,
    Reason,
)

FROZEN_FEATURE = "account.frozen"
"""1 when the event's user's account was frozen when it was decided (remembered with the
event's features, so a re-delivered event is decided the same)."""
ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
ENGINE_ACTOR = "engine"
LIST_HIT = "BLACKLIST_LIST_HIT"


def frozen_reason() -> Reason:
    return Reason(
        code=ACCOUNT_FROZEN,
        points=0,
        detail="the user's account is frozen: every event is blocked until an analyst unfreezes it",
    )


class AccountView:
    """A worker's copy of the account-states topic: the last state of every account that
    was ever frozen, and the frozen ones by user."""

    def __init__(self) -> None:
        self.states: dict[str, AccountState] = {}
        self.frozen: dict[str, AccountState] = {}

    def apply(self, state: AccountState) -> None:
        self.states[state.user_id] = state
        if state.frozen:
            self.frozen[state.user_id] = state
        else:
            self.frozen.pop(state.user_id, None)

    def frozen_user(self, event: InputEvent) -> str | None:
        """The user of ``event`` whose account is frozen, if any (the giver or the redeemer
        of a gift)."""
        frozen = self.frozen
        if not frozen:
            return None
        if isinstance(event, GiftEvent):
            for user in (event.giver_user_id, event.redeemer_user_id):
                if user is not None and user in frozen:
                    return user
            return None
        return event.user_id if event.user_id in frozen else None

    def freeze_for(self, decision: Decision) -> AccountState | None:
        """The freeze ``decision`` asks for, unless its user is frozen already or an analyst
        unfroze the account after the event happened (a re-delivered older event must not
        undo that review). The record is built from the decision alone: a re-decided event
        gives the same one."""
        user = decision.user_id
        if user is None or DecisionAction.FREEZE_ACCOUNT not in decision.actions:
            return None
        known = self.states.get(user)
        if known is not None and (known.frozen or known.changed_at >= decision.event_occurred_at):
            return None
        hits = [r.detail for r in decision.reasons if r.code == LIST_HIT]
        return AccountState(
            user_id=user,
            frozen=True,
            reason=(hits[0] if hits else "block-list hit from the freeze severity")[:512],
            event_id=decision.event_id,
            changed_at=decision.event_occurred_at,
            changed_by=ENGINE_ACTOR,
        )


def manual_change(
    user_id: str, frozen: bool, reason: str, actor: str, at: datetime
) -> AccountState:
    """An analyst's freeze or unfreeze."""
    return AccountState(
        user_id=user_id, frozen=frozen, reason=reason, changed_at=at, changed_by=actor
    )
