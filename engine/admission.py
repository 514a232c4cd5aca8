"""What admission checks beyond the schema, and who each event is about.

Pure functions: the clock is passed in, nothing is read from the outside.

>>> from datetime import UTC, datetime
>>> from schemas.models import GiftEvent
>>> gift = GiftEvent(event_id="e1", occurred_at=1_700_000_000_000, event_type="redeem_attempt",
...                  gift_id="g1", giver_user_id="u1", code_correct=False)
>>> subject_of(gift).key
'gift:g1'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from config.rules import ValidationPolicy
from engine.money import format_brl
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


class Subject:
    """Whose state an event is decided with. A plain class, not a frozen dataclass: compiled,
    a dataclass is built through its generated ``__init__``, run as Python, and every event
    names its subject several times."""

    def __init__(self, type: SubjectType, id: str) -> None:
        self.type: Final[SubjectType] = type
        self.id: Final[str] = id

    def __repr__(self) -> str:
        return f"Subject({self.type.value}, {self.id!r})"

    @property
    def key(self) -> str:
        """Partition key: one partition owns each subject's state."""
        return _KEY_PREFIX[self.type] + self.id


UNKNOWN_ACCOUNT_PREFIX = "login-id:"
"""A login whose identifier matches no account is the identifier's: ``login-id:<hash>``."""


def account_of(login: LoginEvent) -> str:
    """The user a login concerns: its account, or the identifier typed when there is none
    (so failed attempts on made-up accounts count, per identifier and per IP/device)."""
    if login.user_id is not None:
        return login.user_id
    return UNKNOWN_ACCOUNT_PREFIX + (login.login_identifier_hash or "")


def subject_of(event: InputEvent) -> Subject:
    match event:
        case TransactionEvent():
            return Subject(SubjectType.USER, event.user_id)
        case LoginEvent():
            return Subject(SubjectType.USER, account_of(event))
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
    match event:
        case GiftEvent():
            return event.giver_user_id
        case LoginEvent():
            return account_of(event)
    return event.user_id


def check_event_time(event: InputEvent, now: datetime, policy: ValidationPolicy) -> None:
    """Refuse events stamped further in the future than any clock skew would explain."""
    skew = event.occurred_at - now
    if skew > timedelta(seconds=policy.refuse_future_skew_seconds):
        raise DecodeError(
            "FutureTimestamp",
            f"occurred_at is {skew.total_seconds():.0f}s in the future "
            f"(refused beyond {policy.refuse_future_skew_seconds}s)",
        )


CLOCK_SKEW_FEATURE = "event.clock_skew_s"
"""Seconds an event's occurred_at was ahead of its arrival, when it was scored as of its
arrival instead (absent otherwise)."""


def as_of_arrival(
    event: InputEvent, arrived_ms: int, policy: ValidationPolicy
) -> tuple[InputEvent, int]:
    """The event to score: itself when stamped at most the allowed skew ahead of its arrival
    (epoch ms), else a copy stamped at its arrival, and the skew in seconds (0: none).
    Re-deliveries carry the same arrival (the input's broker timestamp), so the same copy.

    >>> from schemas.models import GiftEvent
    >>> from config.rules import load_rules
    >>> policy = load_rules().validation
    >>> gift = GiftEvent(event_id="e1", occurred_at=1_700_003_600_000,
    ...                  event_type="redeem_attempt", gift_id="g1", giver_user_id="u1",
    ...                  code_correct=False)
    >>> scored, skew = as_of_arrival(gift, 1_700_000_000_000, policy)
    >>> scored.occurred_at.timestamp(), skew
    (1700000000.0, 3600)
    >>> as_of_arrival(gift, 1_700_003_500_000, policy)[1]
    0
    """
    skew_ms = int(event.occurred_at.timestamp() * 1000) - arrived_ms
    if skew_ms <= policy.max_future_skew_seconds * 1000:
        return event, 0
    arrived = datetime.fromtimestamp(arrived_ms / 1000, UTC)
    return event.model_copy(update={"occurred_at": arrived}), skew_ms // 1000


AMOUNT_ABOVE_LIMIT = "AmountAboveLimit"


def check_amount(event: InputEvent, policy: ValidationPolicy) -> None:
    """Refuse an amount above its flow's maximum (the value itself is not named)."""
    if isinstance(event, LoginEvent) or event.amount_cents is None:
        return
    limits = policy.max_amount_cents
    flow, limit = (
        ("transaction", limits.transaction)
        if isinstance(event, TransactionEvent)
        else ("gift", limits.gift)
    )
    if event.amount_cents > limit:
        raise DecodeError(
            AMOUNT_ABOVE_LIMIT,
            f"amount_cents is above the {flow} maximum of {format_brl(limit)}",
        )


def admit(
    codec: WireCodec,
    value: bytes | None,
    contracts: tuple[type[InputEvent], ...],
    now: datetime,
    policy: ValidationPolicy,
) -> InputEvent:
    """Decode and check one input record that must be one of ``contracts``, or raise
    ``DecodeError`` with the DLQ reason: the one place an input is validated, whoever reads
    it (the scoring agent, on input and re-route topics alike, and the API)."""
    event = codec.decode(value, contracts)
    check_event_time(event, now, policy)
    check_amount(event, policy)
    return event
