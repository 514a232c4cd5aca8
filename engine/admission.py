"""What admission checks beyond the schema, and who each event is about.

Pure functions: the clock is passed in, nothing is read from the outside.

>>> from datetime import UTC, datetime
>>> from schemas.models import GiftEvent
>>> gift = GiftEvent(event_id="e1", occurred_at=0, event_type="redeem_attempt",
...                  gift_id="g1", giver_user_id="u1", code_correct=False)
>>> subject_of(gift).key
'gift:g1'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config.rules import ValidationPolicy
from schemas.codec import DecodeError, WireCodec
from schemas.models import (
    GiftEvent,
    GiftEventType,
    InputEvent,
    LoginEvent,
    SubjectType,
    TransactionEvent,
)

# Gift steps taken by whoever holds the code, not by the giver: they are keyed by the gift,
# so a code brute-force is seen by the partition that owns that gift.
_RECIPIENT_SIDE_GIFT_STEPS = frozenset({GiftEventType.REDEEM_ATTEMPT, GiftEventType.GIFT_REDEEMED})


_KEY_PREFIX = {subject: f"{subject.value}:" for subject in SubjectType}
"""Formatted once: reading an enum member's ``value`` runs Python code."""


@dataclass(frozen=True)
class Subject:
    type: SubjectType
    id: str

    @property
    def key(self) -> str:
        """Partition key: one partition owns each subject's state."""
        return _KEY_PREFIX[self.type] + self.id


def subject_of(event: InputEvent) -> Subject:
    match event:
        case TransactionEvent() | LoginEvent():
            return Subject(SubjectType.USER, event.user_id)
        case GiftEvent() if event.event_type in _RECIPIENT_SIDE_GIFT_STEPS:
            return Subject(SubjectType.GIFT, event.gift_id)
        case GiftEvent():
            return Subject(SubjectType.USER, event.giver_user_id)
    raise TypeError(f"not an input event: {type(event).__name__}")


def is_redemption_step(event: InputEvent) -> bool:
    """A redemption attempt or a completed redemption (both decided with the gift)."""
    return isinstance(event, GiftEvent) and event.event_type in _RECIPIENT_SIDE_GIFT_STEPS


def user_of(event: InputEvent) -> str:
    """The user an event concerns (the giver, for gifts)."""
    return event.giver_user_id if isinstance(event, GiftEvent) else event.user_id


def check_event_time(event: InputEvent, now: datetime, policy: ValidationPolicy) -> None:
    """Refuse events stamped further in the future than the allowed clock skew."""
    skew = event.occurred_at - now
    if skew > timedelta(seconds=policy.max_future_skew_seconds):
        raise DecodeError(
            "FutureTimestamp",
            f"occurred_at is {skew.total_seconds():.0f}s in the future "
            f"(allowed skew {policy.max_future_skew_seconds}s)",
        )


def admit(
    codec: WireCodec,
    value: bytes | None,
    contract: type[InputEvent],
    now: datetime,
    policy: ValidationPolicy,
) -> InputEvent:
    """Decode and check one input record, or raise ``DecodeError`` with the DLQ reason."""
    event = codec.decode(value, (contract,))
    check_event_time(event, now, policy)
    return event
