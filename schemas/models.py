"""Pydantic v2 mirrors of the Avro schemas in ``schemas/avro``.

The Avro files are the wire contract; these models are how Python code sees it, and they
carry the validation that Avro cannot express (positive money, hashed identities, IP syntax,
coordinates). ``tests/unit/test_schemas.py`` proves both agree field by field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
EVENTS_FROM = datetime(2000, 1, 1, tzinfo=UTC)
EVENTS_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
"""The plausible range of an event's time: a value outside it is a wrong unit or a bug
upstream (seconds read as milliseconds land in January 1970), never a real event."""
_TIMESTAMP_RULE = "timestamp must be integer epoch milliseconds or ISO-8601 text with a UTC offset"
_ISO_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
)


def _instant_within(low: datetime, high: datetime) -> Callable[[Any], datetime]:
    """A validator of instants in [``low``, ``high``]: integer epoch *milliseconds* (the
    contract; never seconds, never a float), ISO-8601 text with its offset, or an aware
    datetime (from code, or from Avro), normalised to UTC and millisecond precision so Avro
    round-trips are exact. Anything else, or a time outside the range, is a value error
    (never an overflow: a date past Python's range is just out of range)."""
    low_ms = (low - _EPOCH) // timedelta(milliseconds=1)
    high_ms = (high - _EPOCH) // timedelta(milliseconds=1)
    out_of_range = f"timestamp must lie from {low:%Y-%m-%d} to {high:%Y-%m-%d} (UTC)"

    def instant(value: Any) -> datetime:
        if type(value) is datetime and value.tzinfo is UTC and not value.microsecond % 1000:
            # Already UTC at millisecond precision (from Avro, or from code): the checks
            # below would return an equal datetime.
            if not low <= value <= high:
                raise ValueError(out_of_range)
            return value
        if isinstance(value, bool) or not isinstance(value, int | str | datetime):
            raise ValueError(_TIMESTAMP_RULE)
        if isinstance(value, int):
            if not low_ms <= value <= high_ms:
                raise ValueError(out_of_range)
            return _EPOCH + timedelta(milliseconds=value)
        given: datetime = value if isinstance(value, datetime) else _parsed_iso(value)
        if given.utcoffset() is None:
            raise ValueError(_TIMESTAMP_RULE)
        try:
            utc = given.astimezone(UTC)
        except OverflowError:
            raise ValueError(out_of_range) from None
        if not low <= utc <= high:
            raise ValueError(out_of_range)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)

    return instant


def _parsed_iso(text: str) -> datetime:
    if not _ISO_WITH_OFFSET.match(text):
        raise ValueError(_TIMESTAMP_RULE)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_TIMESTAMP_RULE) from None


def _canonical_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("not a valid IPv4 or IPv6 address") from None


utc_instant = _instant_within(_EPOCH, _LAST)
"""An instant any record may hold, from its wire forms (ValueError otherwise)."""

UtcMillis = Annotated[AwareDatetime, BeforeValidator(utc_instant)]
"""A timezone-aware instant, UTC, millisecond precision; Avro ``timestamp-millis``."""

EventTime = Annotated[AwareDatetime, BeforeValidator(_instant_within(EVENTS_FROM, EVENTS_UNTIL))]
"""When an input event happened: an instant within the plausible range of event times."""

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/+=-]+$")]
"""Internal ids (users, accounts, gifts, devices): short, printable, no spaces."""

HashedIdentity = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""HMAC-SHA256 hex digest of a normalised identity (e-mail, phone, CPF/CNPJ, PIX key)."""

Centavos = Annotated[int, Field(strict=True, gt=0, le=2**63 - 1)]
"""Money in minor units. Strict: a float (``12.5``) or a string is refused, never rounded."""

IpAddress = Annotated[str, Field(max_length=64), AfterValidator(_canonical_ip)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
ShortText = Annotated[str, Field(max_length=512)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
EmailDomain = Annotated[
    str,
    Field(
        max_length=253, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.[a-z]{2,63}$"
    ),
]
"""The domain part of an e-mail, lower-case (not personal data on its own)."""


class TransactionType(StrEnum):
    PIX_TRANSFER = "PIX_TRANSFER"
    CARD_PAYMENT = "CARD_PAYMENT"
    CRYPTO_SWAP = "CRYPTO_SWAP"
    P2P_CREDIT = "P2P_CREDIT"


class Channel(StrEnum):
    MOBILE_APP = "MOBILE_APP"
    WEB = "WEB"
    POS = "POS"
    ECOMMERCE = "ECOMMERCE"
    API = "API"


class NetworkFlag(StrEnum):
    TOR = "TOR"
    VPN = "VPN"
    PROXY = "PROXY"
    HOSTING = "HOSTING"


class LoginMethod(StrEnum):
    PASSWORD = "PASSWORD"
    OTP = "OTP"
    BIOMETRIC = "BIOMETRIC"
    SSO = "SSO"
    MAGIC_LINK = "MAGIC_LINK"


class GiftEventType(StrEnum):
    GIFT_CREATED = "gift_created"
    PAYMENT_FAILED = "payment_failed"
    GIFT_PAID = "gift_paid"
    REDEEM_ATTEMPT = "redeem_attempt"
    GIFT_REDEEMED = "gift_redeemed"
    REFUND_REQUESTED = "refund_requested"


class EventKind(StrEnum):
    TRANSACTION = "transaction"
    LOGIN = "login"
    GIFT = "gift"


class SubjectType(StrEnum):
    USER = "user"
    GIFT = "gift"


class BlockedEntityType(StrEnum):
    """What a fraud block can hold: a subject, or an entity seen across subjects."""

    USER = "user"
    GIFT = "gift"
    IP = "ip"
    DEVICE = "device"
    CARD = "card"
    ACCOUNT = "account"
    DOCUMENT = "document"
    TERMINAL = "terminal"
    COUNTERPARTY = "counterparty"


SUBJECT_ENTITY_TYPES = frozenset({BlockedEntityType.USER, BlockedEntityType.GIFT})
"""Block types that are subjects (decided with their own state); the rest are entities seen
across subjects, which get windows of their own."""


class RiskBand(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Verdict(StrEnum):
    ALLOW = "ALLOW"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"


class WireModel(BaseModel):
    """Base of every wire record: immutable, unknown fields refused (typos surface at once)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    avro_name: ClassVar[str]


class TransactionEvent(WireModel):
    avro_name: ClassVar[str] = "TransactionEvent"

    event_id: Identifier
    occurred_at: EventTime
    tx_type: TransactionType
    channel: Channel | None = None
    user_id: Identifier
    account_id: Identifier | None = None
    card_id: Identifier | None = None
    amount_cents: Centavos
    currency: CurrencyCode = "BRL"
    counterparty_pix_key_hash: HashedIdentity | None = None
    counterparty_wallet: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    counterparty_bank_account: Identifier | None = None
    terminal_id: Identifier | None = None
    merchant_id: Identifier | None = None
    device_id: Identifier | None = None
    ip: IpAddress | None = None
    country: CountryCode | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    network_flags: list[NetworkFlag] = Field(default_factory=list)
    email_hash: HashedIdentity | None = None
    email_domain: EmailDomain | None = None
    phone_hash: HashedIdentity | None = None
    document_hash: HashedIdentity | None = None
    user_agent: ShortText | None = None


class LoginEvent(WireModel):
    avro_name: ClassVar[str] = "LoginEvent"

    event_id: Identifier
    occurred_at: EventTime
    user_id: Identifier | None = None
    success: Annotated[bool, Field(strict=True)]
    method: LoginMethod
    failure_reason: Annotated[str, Field(max_length=64)] | None = None
    ip: IpAddress | None = None
    device_fingerprint: Identifier | None = None
    user_agent: ShortText | None = None
    country: CountryCode | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    network_flags: list[NetworkFlag] = Field(default_factory=list)
    email_hash: HashedIdentity | None = None
    email_domain: EmailDomain | None = None
    login_identifier_hash: HashedIdentity | None = None

    @model_validator(mode="after")
    def _an_account_or_the_identifier_typed(self) -> LoginEvent:
        if self.user_id is None and self.login_identifier_hash is None:
            raise ValueError("a login names its user_id, or login_identifier_hash when none")
        if self.user_id is None and self.success:
            raise ValueError("a login with no account (no user_id) cannot succeed")
        return self


_GIFT_TYPES_WITH_AMOUNT = frozenset(
    {GiftEventType.GIFT_CREATED, GiftEventType.GIFT_PAID, GiftEventType.REFUND_REQUESTED}
)


class GiftEvent(WireModel):
    avro_name: ClassVar[str] = "GiftEvent"

    event_id: Identifier
    occurred_at: EventTime
    event_type: GiftEventType
    gift_id: Identifier
    giver_user_id: Identifier
    recipient_key_hash: HashedIdentity | None = None
    redeemer_user_id: Identifier | None = None
    amount_cents: Centavos | None = None
    code_correct: Annotated[bool, Field(strict=True)] | None = None
    ip: IpAddress | None = None
    device_id: Identifier | None = None
    country: CountryCode | None = None
    network_flags: list[NetworkFlag] = Field(default_factory=list)
    user_agent: ShortText | None = None
    email_hash: HashedIdentity | None = None
    phone_hash: HashedIdentity | None = None
    document_hash: HashedIdentity | None = None
    refund_destination_hash: HashedIdentity | None = None

    @model_validator(mode="after")
    def _fields_required_by_type(self) -> GiftEvent:
        if self.event_type in _GIFT_TYPES_WITH_AMOUNT and self.amount_cents is None:
            raise ValueError(f"amount_cents is required for {self.event_type.value}")
        if self.event_type is GiftEventType.REDEEM_ATTEMPT and self.code_correct is None:
            raise ValueError("code_correct is required for redeem_attempt")
        return self


InputEvent = TransactionEvent | LoginEvent | GiftEvent
INPUT_MODELS = (TransactionEvent, LoginEvent, GiftEvent)


class DecisionAction(StrEnum):
    CAPTCHA_REQUIRED = "CAPTCHA_REQUIRED"
    FLAG_USER_FOR_REVIEW = "FLAG_USER_FOR_REVIEW"
    BLOCK_GIFT_CREATION = "BLOCK_GIFT_CREATION"
    BLOCK_REDEMPTION = "BLOCK_REDEMPTION"
    INTERNAL_ALERT = "INTERNAL_ALERT"
    FREEZE_ACCOUNT = "FREEZE_ACCOUNT"


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    points: int
    detail: str


class Decision(WireModel):
    avro_name: ClassVar[str] = "Decision"

    event_id: Identifier
    event_kind: EventKind
    event_type: str
    subject_type: SubjectType
    subject_id: Identifier
    user_id: Identifier | None = None
    score: Annotated[int, Field(ge=0, le=100)]
    band: RiskBand
    decision: Verdict
    reasons: list[Reason] = Field(default_factory=list)
    features: dict[str, int] = Field(default_factory=dict)
    actions: list[DecisionAction] = Field(default_factory=list)
    user_message: Annotated[str, Field(max_length=512)] | None = None
    rule_version: str
    event_occurred_at: UtcMillis
    decided_at: UtcMillis
    latency_ms: int
    model_version: str | None = None
    model_probability: Probability | None = None
    model_anomaly: Probability | None = None
    label_entities: list[str] = Field(default_factory=list)


class KnownFraud(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Identifier
    occurred_at: UtcMillis
    labelled_at: UtcMillis


class KnownFrauds(WireModel):
    """The frauds known on one entity (terminal, card), whole: the compacted topic's value."""

    avro_name: ClassVar[str] = "KnownFrauds"

    entity_key: Annotated[str, Field(min_length=1, max_length=256)]
    frauds: list[KnownFraud] = Field(default_factory=list)
    updated_at: UtcMillis


class ModelSnapshot(WireModel):
    avro_name: ClassVar[str] = "ModelSnapshot"

    name: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=128)]
    labels: Annotated[int, Field(ge=0)]
    frauds: Annotated[int, Field(ge=0)]
    events: Annotated[int, Field(ge=0)]
    known_until: UtcMillis
    created_at: UtcMillis
    blob: bytes
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ShadowDecision(WireModel):
    """What a challenger configuration would have decided, beside the champion's decision."""

    avro_name: ClassVar[str] = "ShadowDecision"

    event_id: Identifier
    event_kind: EventKind
    subject_id: Identifier
    event_occurred_at: UtcMillis
    amount_cents: int | None = None
    champion_decision: Verdict
    champion_score: Annotated[int, Field(ge=0, le=100)]
    champion_version: str
    challenger_decision: Verdict
    challenger_score: Annotated[int, Field(ge=0, le=100)]
    challenger_version: str
    challenger_reasons: list[str] = Field(default_factory=list)


class DeadLetter(WireModel):
    avro_name: ClassVar[str] = "DeadLetter"

    original_value: bytes | None = None
    original_key: bytes | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    error_class: str
    error_message: str
    failed_at: UtcMillis


class FraudEvent(WireModel):
    avro_name: ClassVar[str] = "FraudEvent"

    event_id: Identifier
    user_id: Identifier
    gift_id: Identifier
    event_type: str
    risk_score: Annotated[int, Field(ge=0, le=100)]
    decision: Verdict
    reason_codes: list[str] = Field(default_factory=list)
    network_flags: list[str] = Field(default_factory=list)
    ip_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    """The actor's IP as IP blocks know it (``engine.entities.keyed_id``), never in clear."""
    created_at: UtcMillis


class FraudBlock(WireModel):
    avro_name: ClassVar[str] = "FraudBlock"

    entity_type: BlockedEntityType
    entity_id: Identifier
    reason: str
    event_id: Identifier
    created_at: UtcMillis
    expires_at: UtcMillis


class ListKind(StrEnum):
    BLOCK = "BLOCK"
    ALLOW = "ALLOW"


class ListEntityType(StrEnum):
    """What a list value is ("BlacklistService" entity types, plus domains, ranges, PIX keys)."""

    USER = "user"
    WALLET = "wallet"
    EMAIL = "email"
    EMAIL_DOMAIN = "email_domain"
    IP = "ip"
    IP_RANGE = "ip_range"
    PHONE = "phone"
    DOCUMENT = "document"
    BANK_ACCOUNT = "bank_account"
    PIX_KEY = "pix_key"


class ListSeverity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class ListSource(StrEnum):
    MANUAL = "MANUAL"
    AUTOMATED = "AUTOMATED"
    EXTERNAL = "EXTERNAL"
    CHAINALYSIS = "CHAINALYSIS"
    OFAC = "OFAC"
    BACEN = "BACEN"


class ListEntry(WireModel):
    avro_name: ClassVar[str] = "ListEntry"

    entry_id: Annotated[str, Field(min_length=1, max_length=256)]
    list_kind: ListKind
    entity_type: ListEntityType
    value_key: Annotated[str, Field(min_length=1, max_length=64)]
    masked_value: ShortText
    severity: ListSeverity
    source: ListSource
    reason: ShortText
    created_at: UtcMillis
    created_by: Identifier
    expires_at: UtcMillis | None = None
    removed_at: UtcMillis | None = None
    removed_by: Identifier | None = None
    linked_from: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """For an entry the engine derived: the block entry it follows (``engine.lists.link_for``),
    in force only while that one is."""

    def active_at(self, at: datetime) -> bool:
        """In force at ``at``: not removed, not expired."""
        return self.removed_at is None and (self.expires_at is None or at < self.expires_at)


class AccountState(WireModel):
    """Whether a user's account is frozen: the last record per user on the compacted
    account-states topic, which every worker follows (a frozen account's events are blocked)."""

    avro_name: ClassVar[str] = "AccountState"

    user_id: Identifier
    frozen: Annotated[bool, Field(strict=True)]
    reason: ShortText
    event_id: Identifier | None = None
    changed_at: UtcMillis
    changed_by: Identifier


class WatchlistName(WireModel):
    avro_name: ClassVar[str] = "WatchlistName"

    entry_id: Annotated[str, Field(min_length=1, max_length=128)]
    list_name: Annotated[str, Field(min_length=1, max_length=64)]
    name: ShortText
    aliases: list[ShortText] = Field(default_factory=list)
    kind: Annotated[str, Field(max_length=64)]
    programs: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    listed_at: UtcMillis


class Alert(WireModel):
    avro_name: ClassVar[str] = "Alert"

    alert_id: Annotated[str, Field(min_length=1, max_length=256)]
    rule: Annotated[str, Field(min_length=1, max_length=64)]
    severity: Annotated[str, Field(pattern=r"^(CRITICAL|HIGH|MEDIUM|LOW)$")]
    channels: list[str] = Field(default_factory=list)
    message: ShortText
    subject_id: Identifier | None = None
    event_id: Identifier
    dedupe_key: Annotated[str, Field(max_length=512)]
    created_at: UtcMillis


class ActorType(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    SYSTEM = "system"
    USER = "user"


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    CLOSED = "closed"


class CasePriority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class CaseOutcome(StrEnum):
    FRAUD_CONFIRMED = "fraud_confirmed"
    LEGITIMATE = "legitimate"


class CaseAction(StrEnum):
    LINK_DECISION = "link_decision"
    UPDATE = "update"
    NOTE = "note"
    CLOSE = "close"


SealedText = Annotated[str, Field(min_length=1, max_length=65536)]
"""Text sealed under a data subject's key (``engine.sealing``): base64 of nonce and ciphertext."""


class CaseNote(BaseModel):
    """An analyst's note: sealed under the subject's key (``text`` in clear only in notes
    written before notes were sealed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: UtcMillis
    author: Annotated[str, Field(min_length=1, max_length=128)]
    text: Annotated[str, Field(min_length=1, max_length=4000)] | None = None
    sealed: SealedText | None = None
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _has_text(self) -> CaseNote:
        if (self.text is None) == (self.sealed is None):
            raise ValueError("a note holds its text either sealed or (older notes) in clear")
        return self


class Case(WireModel):
    avro_name: ClassVar[str] = "Case"

    case_id: Annotated[str, Field(min_length=1, max_length=256)]
    subject_type: SubjectType
    subject_id: Identifier
    status: CaseStatus
    priority: CasePriority
    assignee: Annotated[str, Field(max_length=128)] | None = None
    notes: list[CaseNote] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list)
    reason_codes: list[str] = Field(default_factory=list)
    opened_at: UtcMillis
    updated_at: UtcMillis
    closed_at: UtcMillis | None = None
    closed_by: Annotated[str, Field(max_length=128)] | None = None
    outcome: CaseOutcome | None = None
    version: Annotated[int, Field(ge=1)]


class CaseCommand(WireModel):
    avro_name: ClassVar[str] = "CaseCommand"

    command_id: Annotated[str, Field(min_length=1, max_length=256)]
    subject_type: SubjectType
    subject_id: Identifier
    action: CaseAction
    actor: Annotated[str, Field(min_length=1, max_length=128)]
    actor_type: ActorType
    at: UtcMillis
    case_id: Annotated[str, Field(max_length=256)] | None = None
    event_id: Identifier | None = None
    priority: CasePriority | None = None
    reason_codes: list[str] = Field(default_factory=list)
    status: CaseStatus | None = None
    assignee: Annotated[str, Field(max_length=128)] | None = None
    note: Annotated[str, Field(min_length=1, max_length=4000)] | None = None
    """A note in clear: commands written before notes were sealed."""
    note_sealed: SealedText | None = None
    note_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    outcome: CaseOutcome | None = None


class Label(WireModel):
    avro_name: ClassVar[str] = "Label"

    label_id: Annotated[str, Field(min_length=1, max_length=256)]
    subject_type: SubjectType
    subject_id: Identifier
    is_fraud: Annotated[bool, Field(strict=True)]
    event_ids: list[str] = Field(default_factory=list)
    labelled_at: UtcMillis
    source: Annotated[str, Field(min_length=1, max_length=32)]


class AuditActor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ActorType
    id: Annotated[str, Field(min_length=1, max_length=128)]
    email_masked: ShortText | None = None
    ip_masked: ShortText | None = None
    user_agent: ShortText | None = None


class AuditDetails(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entity_type: str | None = None
    entity_value_masked: str | None = None
    reason: str | None = None
    severity: str | None = None
    source: str | None = None
    correlation_id: str | None = None
    transaction_id: str | None = None
    case_id: str | None = None
    change_type: str | None = None
    previous_state: str | None = None
    new_state: str | None = None
    request: str | None = None


class AuditCompliance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    regulation: str
    retention_period: str
    classification: str
    data_subject: str | None = None


class AuditRecord(WireModel):
    avro_name: ClassVar[str] = "AuditRecord"

    audit_id: Annotated[str, Field(min_length=1, max_length=256)]
    timestamp: UtcMillis
    action: Annotated[str, Field(min_length=1, max_length=64)]
    actor: AuditActor
    details: AuditDetails
    compliance: AuditCompliance
    chain: Annotated[int, Field(ge=0)] | None = None
    sequence: Annotated[int, Field(ge=0)] | None = None
    previous_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    sealed_pii: Annotated[str, Field(max_length=65536)] | None = None


Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest in lower-case hex."""


class AuditBatch(WireModel):
    avro_name: ClassVar[str] = "AuditBatch"

    batch_id: Annotated[str, Field(min_length=1, max_length=64)]
    chain: Annotated[int, Field(ge=0)]
    first_sequence: Annotated[int, Field(ge=0)]
    last_sequence: Annotated[int, Field(ge=0)]
    count: Annotated[int, Field(ge=1)]
    root: Hex32
    previous_root: Hex32 | None = None
    closed_at: UtcMillis


class AuditAnchor(WireModel):
    avro_name: ClassVar[str] = "AuditAnchor"

    day: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    root: Hex32
    batch_ids: list[str] = Field(default_factory=list)
    network_passphrase: Annotated[str, Field(min_length=1, max_length=128)]
    source_account: Annotated[str, Field(pattern=r"^G[A-Z2-7]{55}$")]
    envelope_xdr: Annotated[str, Field(min_length=1)]
    tx_hash: Hex32
    submitted: Annotated[bool, Field(strict=True)]
    created_at: UtcMillis


WIRE_MODELS: tuple[type[WireModel], ...] = (
    TransactionEvent,
    LoginEvent,
    GiftEvent,
    Decision,
    FraudEvent,
    FraudBlock,
    ListEntry,
    WatchlistName,
    AccountState,
    AuditRecord,
    AuditBatch,
    AuditAnchor,
    Case,
    CaseCommand,
    Label,
    Alert,
    KnownFrauds,
    ModelSnapshot,
    ShadowDecision,
    DeadLetter,
)

EVENT_KIND_OF: dict[type[WireModel], EventKind] = {
    TransactionEvent: EventKind.TRANSACTION,
    LoginEvent: EventKind.LOGIN,
    GiftEvent: EventKind.GIFT,
}
