"""Typed, frozen view of ``config/rules.toml``: the only source of thresholds and points."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import describe_validation_error
from schemas.models import (
    SUBJECT_ENTITY_TYPES,
    BlockedEntityType,
    EventKind,
    ListSeverity,
    NetworkFlag,
    TransactionType,
    Verdict,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AmountLimits(_Frozen):
    """The largest amount (centavos) one event of each flow with money may carry."""

    transaction: int = Field(gt=0, le=2**63 - 1)
    gift: int = Field(gt=0, le=2**63 - 1)


class ValidationPolicy(_Frozen):
    """Clock skew: an event stamped up to ``max_future_skew_seconds`` ahead of its arrival is
    scored as stamped; further ahead, as of its arrival (and says so); further ahead than
    ``refuse_future_skew_seconds`` of the engine's clock, refused. Amounts above
    ``max_amount_cents`` of their flow are refused."""

    max_future_skew_seconds: int = Field(ge=0, le=86_400)
    refuse_future_skew_seconds: int = Field(ge=0, le=31_536_000)
    max_amount_cents: AmountLimits

    @model_validator(mode="after")
    def _refused_beyond_scored(self) -> ValidationPolicy:
        if self.refuse_future_skew_seconds < self.max_future_skew_seconds:
            raise ValueError(
                "validation.refuse_future_skew_seconds must be at least max_future_skew_seconds"
            )
        return self


class Bands(_Frozen):
    low_below: int = Field(gt=0, le=100)
    medium_below: int = Field(gt=0, le=100)
    high_below: int = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not self.low_below < self.medium_below < self.high_below:
            raise ValueError("bands must satisfy low_below < medium_below < high_below")
        return self


class FlowThresholds(_Frozen):
    """ALLOW below ``review_from``, BLOCK above ``block_above``, REVIEW in between."""

    review_from: int = Field(ge=0, le=100)
    block_above: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> FlowThresholds:
        if self.review_from > self.block_above:
            raise ValueError("review_from must not exceed block_above")
        return self


class DecisionThresholds(_Frozen):
    login: FlowThresholds
    transaction: FlowThresholds
    gift: FlowThresholds


MAX_HORIZON_S = 31 * 86_400
"""The longest horizon a velocity state keeps: its history is kept in 32 day slots, each
reused 32 days later (``engine.velocity.DAY_SLOTS``)."""


class Velocity(_Frozen):
    """Named sliding windows (seconds) and the horizon that bounds the state."""

    horizon: str
    windows: dict[str, int]

    @model_validator(mode="after")
    def _horizon_is_longest(self) -> Velocity:
        if not self.windows or min(self.windows.values()) <= 0:
            raise ValueError("windows must be positive numbers of seconds")
        if self.horizon not in self.windows:
            raise ValueError(f"horizon {self.horizon!r} is not one of the windows")
        if self.windows[self.horizon] != max(self.windows.values()):
            raise ValueError("horizon must be the longest window")
        if self.windows[self.horizon] > MAX_HORIZON_S:
            raise ValueError(f"horizon must be at most {MAX_HORIZON_S // 86_400} days")
        return self

    @property
    def horizon_s(self) -> int:
        return self.windows[self.horizon]


class GiftLimits(_Frozen):
    max_amount_per_gift_cents: int = Field(gt=0)
    max_gifts_per_day: int = Field(gt=0)
    max_amount_per_day_cents: int = Field(gt=0)
    max_failed_payments_per_day: int = Field(gt=0)
    max_code_attempts: int = Field(gt=0)
    max_refunds_per_day: int = Field(gt=0)
    day_window: str
    refund_window: str


class GiftPatterns(_Frozen):
    rapid_creation_count: int = Field(gt=1)
    rapid_creation_window: str
    suspicious_code_attempts: int = Field(gt=0)
    code_attempts_window: str
    suspicious_network_flags: frozenset[NetworkFlag]


class GiftBlocks(_Frozen):
    giver_block_seconds: int = Field(gt=0)
    redemption_block_seconds: int = Field(gt=0)
    giver_block_reaches_payments: bool = True
    """Whether a giver's block (placed by a blocked gift action) also scores the user's
    transactions and logins (``BLACKLIST_FRAUD_BLOCK``), not only their gift actions."""


class ConsecutiveFailures(_Frozen):
    """Seed 5.2 ("Falhas consecutivas": "Bloqueio temporário"): ``failures`` wrong codes in a row
    from one redeemer (its device, ``engine.entities``), across gifts, with no correct code from
    it in between, within ``window``: its redemption steps are blocked for ``block_seconds``
    (at most a day: the block is temporary)."""

    failures: int = Field(ge=2)
    window: str
    block_seconds: int = Field(gt=0, le=86_400)


class GiftActions(_Frozen):
    blocked_message: str = Field(min_length=1, max_length=512)
    captcha_after: frozenset[str]


class GiftPoints(_Frozen):
    subject_blocked: int = Field(ge=0, le=100)
    amount_over_gift_limit: int = Field(ge=0, le=100)
    daily_count_exceeded: int = Field(ge=0, le=100)
    daily_amount_exceeded: int = Field(ge=0, le=100)
    failed_payments_exceeded: int = Field(ge=0, le=100)
    code_attempts_exceeded: int = Field(ge=0, le=100)
    code_attempts: int = Field(ge=0, le=100)
    rapid_creation: int = Field(ge=0, le=100)
    suspicious_ip: int = Field(ge=0, le=100)
    payment_failed: int = Field(ge=0, le=100)
    mass_refund: int = Field(ge=0, le=100)
    refund_after_redemption: int = Field(ge=0, le=100)
    refund_outside_policy: int = Field(ge=0, le=100)
    entity_blocked: int = Field(ge=0, le=100)


class GiftRules(_Frozen):
    limits: GiftLimits
    patterns: GiftPatterns
    blocks: GiftBlocks
    consecutive_failures: ConsecutiveFailures
    actions: GiftActions
    points: GiftPoints


class CapyPayBlacklist(_Frozen):
    fraud_block_points: int = Field(ge=0, le=100)


class CapyPayCaps(_Frozen):
    blacklist: int = Field(ge=0, le=100)
    velocity: int = Field(ge=0, le=100)
    amount: int = Field(ge=0, le=100)
    geolocation: int = Field(ge=0, le=100)
    behavioral: int = Field(ge=0, le=100)


class CapyPayVelocity(_Frozen):
    hour_window: str
    day_window: str
    transactions_per_hour: int = Field(gt=0)
    transactions_per_day: int = Field(gt=0)
    volume_per_hour_cents: int = Field(gt=0)
    volume_per_day_cents: int = Field(gt=0)
    points_per_extra_transaction: int = Field(ge=0)
    max_frequency_points: int = Field(ge=0)
    points_per_volume_ratio: int = Field(ge=0)
    max_volume_points: int = Field(ge=0)
    rapid_succession_seconds: int = Field(gt=0)
    rapid_succession_points: int = Field(ge=0)
    unusual_hours: frozenset[int]
    unusual_hours_points: int = Field(ge=0)
    weekend_busy_transactions_per_day: int = Field(gt=0)
    weekend_points: int = Field(ge=0)
    local_utc_offset_hours: int = Field(ge=-12, le=14)


class CapyPayAmount(_Frozen):
    single_transaction_alert_cents: int = Field(gt=0)
    high_value_points_per_threshold: int = Field(ge=0)
    max_high_value_points: int = Field(ge=0)
    unusual_amount_threshold: float = Field(gt=0)
    points_per_unusual_ratio: int = Field(ge=0)
    max_unusual_points: int = Field(ge=0)
    min_history_for_average: int = Field(ge=1)
    average_window: str
    round_amount_unit_cents: int = Field(gt=0)
    round_amount_points: int = Field(ge=0)
    just_below_fraction: float = Field(gt=0, lt=1)
    just_below_points: int = Field(ge=0)
    daily_volume_alert_cents: int = Field(gt=0)
    daily_volume_points: int = Field(ge=0)
    pattern_window: str
    repeated_amount_count: int = Field(gt=1)
    repeated_amount_points: int = Field(ge=0)
    structuring_count: int = Field(gt=1)
    structuring_min_fraction: float = Field(gt=0, lt=1)
    structuring_points: int = Field(ge=0)


class CapyPayGeo(_Frozen):
    high_risk_countries: frozenset[str]
    high_risk_country_points: int = Field(ge=0)
    new_country_points: int = Field(ge=0)
    tor_vpn_points: int = Field(ge=0)
    proxy_points: int = Field(ge=0)
    impossible_travel_kmh: int = Field(gt=0)
    impossible_travel_min_km: int = Field(ge=0)
    impossible_travel_points: int = Field(ge=0)
    country_hopping_countries: int = Field(gt=1)
    country_hopping_points: int = Field(ge=0)


class CapyPayBehavioral(_Frozen):
    bot_speed_seconds: int = Field(gt=0)
    rapid_actions_points: int = Field(ge=0)
    new_device_points: int = Field(ge=0)
    unusual_hours_points: int = Field(ge=0)
    usual_hours_window: str
    usual_hours_min_history: int = Field(ge=1)
    usual_hours_tolerance: int = Field(ge=0, le=11)


class CapyPayLoginVelocity(_Frozen):
    window: str
    failures_allowed: int = Field(ge=0)
    points_per_extra_failure: int = Field(ge=0)
    logins_allowed: int = Field(gt=0)
    points_per_extra_login: int = Field(ge=0)
    max_points: int = Field(ge=0)


class ActionVelocity(_Frozen):
    """The seed's ``velocityCheckMiddleware`` for one transaction type: more than either limit
    of the user's transactions of that type in ``hour_window`` (this one included) blocks."""

    hour_window: str
    transactions_per_hour: int = Field(gt=0)
    volume_per_hour_cents: int = Field(gt=0)


class ActionOptions(_Frozen):
    """The seed middleware's per-action options."""

    block_on_medium_risk: bool = False
    require_manual_review: bool = False
    high_value_review_cents: int | None = Field(default=None, gt=0)
    velocity: ActionVelocity | None = None


class CapyPay(_Frozen):
    blacklist: CapyPayBlacklist
    caps: CapyPayCaps
    velocity: CapyPayVelocity
    amount: CapyPayAmount
    geo: CapyPayGeo
    behavioral: CapyPayBehavioral
    login_velocity: CapyPayLoginVelocity
    actions: dict[TransactionType, ActionOptions] = Field(default_factory=dict)


def _not_a_subject(entity: BlockedEntityType) -> BlockedEntityType:
    if entity in SUBJECT_ENTITY_TYPES:
        raise ValueError(f"{entity.value} is a subject, not an entity seen across subjects")
    return entity


TrackedEntity = Annotated[BlockedEntityType, AfterValidator(_not_a_subject)]


class EntityLimit(_Frozen):
    """More than ``max`` of ``measure`` over the ``metric`` events one entity took part in,
    within ``window``: block the entity. ``counterparties`` counts the distinct subjects
    (users, gifts) that used it."""

    entity: TrackedEntity
    metric: str = Field(min_length=1)
    window: str
    measure: Literal["count", "amount_cents", "counterparties"] = "count"
    max: int = Field(ge=0)
    block_seconds: int = Field(gt=0)
    reason: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")


class Entities(_Frozen):
    tracked: frozenset[TrackedEntity]
    limits: tuple[EntityLimit, ...] = ()

    @model_validator(mode="after")
    def _limits_on_tracked(self) -> Entities:
        untracked = sorted({limit.entity.value for limit in self.limits} - set(self.tracked))
        if untracked:
            raise ValueError(f"entity limits on untracked entities: {', '.join(untracked)}")
        return self


def feature_window(feature: str) -> str:
    """The window a feature is counted over: ``gift_created.count.24h`` -> ``24h``."""
    return feature.rsplit(".", 1)[-1]


class SyncPolicy(_Frozen):
    """Synchronous callers: how long they wait, and what they get when the engine is late."""

    timeout_ms: int = Field(gt=0, le=60_000)
    on_timeout: dict[EventKind, Literal["fail_open", "fail_closed"]]
    mirrored_counters: frozenset[str]

    @model_validator(mode="after")
    def _every_kind(self) -> SyncPolicy:
        missing = sorted(set(EventKind) - set(self.on_timeout))
        if missing:
            raise ValueError(f"sync.on_timeout has no policy for: {', '.join(missing)}")
        return self


class ListRules(_Frozen):
    severity_points: dict[ListSeverity, int]
    additional_match_points: int = Field(ge=0, le=100)
    max_points: int = Field(ge=0, le=100)
    block_from: dict[EventKind, ListSeverity]
    alert_from: ListSeverity
    freeze_from: ListSeverity

    @model_validator(mode="after")
    def _every_severity_scored(self) -> ListRules:
        missing = sorted(set(ListSeverity) - set(self.severity_points))
        if missing:
            raise ValueError(f"lists.severity_points lacks {', '.join(missing)}")
        return self


class CaseRules(_Frozen):
    open_on_verdicts: frozenset[Verdict]
    open_on_list_severities: frozenset[ListSeverity]


AlertRule = Literal[
    "blacklist_hit_critical",
    "blacklist_hit_high",
    "fraud_spike",
    "unusual_pattern",
    "system_performance",
    "audit_conflict",
    "raw_pii_in_hash",
]


class AlertTrigger(_Frozen):
    severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    channels: tuple[str, ...]


class AlertRules(_Frozen):
    fraud_spike_rate: float = Field(gt=0, lt=1)
    fraud_spike_min_decisions: int = Field(ge=1)
    slow_processing_ms: int = Field(ge=1)
    unusual_min_count: int = Field(ge=1)
    unusual_factor: float = Field(gt=1)
    same_alert_seconds: int = Field(ge=0)
    per_user_seconds: int = Field(ge=0)
    global_per_hour: int = Field(ge=1)
    triggers: dict[AlertRule, AlertTrigger]

    @model_validator(mode="after")
    def _every_trigger(self) -> AlertRules:
        missing = [rule for rule in get_args(AlertRule) if rule not in self.triggers]
        if missing:
            raise ValueError(f"alerts.triggers lacks {', '.join(missing)}")
        return self


class ScreeningRules(_Frozen):
    min_score: float = Field(gt=0, le=1)


class BatchRules(_Frozen):
    """The batch model (``engine.batch``): gradient-boosted trees the learner retrains on a
    schedule from the labelled transactions, published beside the online model."""

    enabled: bool
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=64)
    retrain_hours: int = Field(ge=1)
    """Event time between two trainings (trainings start at multiples of it, UTC)."""
    training_days: int = Field(ge=1)
    """Transactions that occurred this many days before a training, with a known label."""
    min_frauds: int = Field(ge=1)
    legit_sample: float = Field(gt=0, le=1)
    """Share of the legitimate examples kept for training (all frauds are kept)."""
    weight: float = Field(ge=0, le=1)
    """The batch probability's share of the model's probability (the rest: the online
    model's) once a batch model is loaded."""
    rounds: int = Field(ge=1, le=5000)
    learning_rate: float = Field(gt=0, le=1)
    leaves: int = Field(ge=2, le=1024)
    min_leaf: int = Field(ge=1)
    max_bins: int = Field(ge=15, le=65535)
    threads: int = Field(ge=1)
    seed: int
    amount_window: str
    """The user's window whose previous amounts give the median and maximum."""


class FlowModelRules(_Frozen):
    """Online models for logins and gift events (``engine.learning.FlowModel``): the same
    learner as the transactions' on what their decisions hold, with thresholds of their own
    (these flows see fewer labels)."""

    enabled: bool
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=64)
    min_labels: int = Field(ge=0)
    min_frauds: int = Field(ge=0)
    points: int = Field(ge=0, le=100)


class ModelRules(_Frozen):
    """The online model (``engine.learning``) and its part of the score."""

    enabled: bool
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=64)
    points: int = Field(ge=0, le=100)
    anomaly_points: int = Field(ge=0, le=100)
    anomaly_quantile: float = Field(gt=0, lt=1)
    anomaly_quantile_window: int = Field(ge=1)
    min_labels: int = Field(ge=0)
    min_frauds: int = Field(ge=0)
    fraud_weight: float = Field(gt=0)
    learning_rate: float = Field(gt=0)
    l2: float = Field(ge=0)
    anomaly_trees: int = Field(ge=1)
    anomaly_height: int = Field(ge=1, le=16)
    anomaly_window: int = Field(ge=1)
    seed: int
    top_features: int = Field(ge=0)
    night_until_hour: int = Field(ge=0, le=23)
    amount_bands_per_octave: int = Field(ge=0, le=16)
    amount_band_octaves: int = Field(ge=1, le=40)
    user_windows: tuple[str, ...]
    known_fraud_entities: tuple[TrackedEntity, ...]
    known_fraud_windows: tuple[str, ...]
    known_fraud_keep: int = Field(ge=1)
    snapshot_history: int = Field(ge=1)
    batch: BatchRules
    flows: FlowModelRules


class AccountTakeover(_Frozen):
    """New device, new country, new payee, amount far above the user's usual: a user with
    an established history showing ``min_signals`` of the four at once on one transaction
    (the amount counts once ``min_history`` transactions give a usual one), the new device
    among them when ``new_device_required``."""

    min_signals: int = Field(ge=2, le=4)
    new_device_required: bool = False
    """A takeover is someone else's phone or browser: without a new device, a traveller's
    first PIX abroad to someone new, above their usual, would show three signals."""
    points: int = Field(ge=0, le=100)
    amount_ratio: float = Field(gt=1)
    min_history: int = Field(ge=1)
    """Earlier transactions in the average window before an amount is "above the usual"."""


class CardTesting(_Frozen):
    """Small charges in minutes to distinct merchants (``min_small`` in ``window``), and
    any charge within ``after_window`` of a burst of ``after_burst`` of them."""

    window: str
    small_max_cents: int = Field(gt=0)
    min_small: int = Field(ge=2)
    min_counterparties: int = Field(ge=2)
    after_window: str
    after_burst: int = Field(ge=2)
    points: int = Field(ge=0, le=100)


class Structuring(_Frozen):
    """Transfers each just under a reporting or alert limit, adding up past it in a window."""

    window: str
    limits_cents: tuple[int, ...] = Field(min_length=1)
    below_fraction: float = Field(gt=0, lt=1)
    """A transfer from this fraction of a limit up to the limit is "just under" it."""
    min_count: int = Field(ge=2)
    points: int = Field(ge=0, le=100)
    single_points: int = Field(ge=0, le=100)
    """A lone transfer just under a limit (the first of a series cannot be told apart)."""


class AnonymisedNetwork(_Frozen):
    """TOR exits alone; VPN, proxy or hosting networks with a device the user never used."""

    tor_points: int = Field(ge=0, le=100)
    masked_unknown_device_points: int = Field(ge=0, le=100)
    masking_flags: frozenset[NetworkFlag]


class LoginDetection(_Frozen):
    unknown_device_failure_points: int = Field(ge=0, le=100)
    """A failed login from a device the account never used, on an account with no
    established history, or from a country it never used, a masked network or a scripted
    client (credential stuffing; not a typo on a new phone at home)."""
    scripted_points: int = Field(ge=0, le=100)
    scripted_agents: tuple[str, ...]
    """User agents of HTTP libraries and headless browsers (lower case, matched as
    substrings): a person does not log in with them."""


class GiftDetection(_Frozen):
    near_limit_fraction: float = Field(gt=0, lt=1)
    near_limit_points: int = Field(ge=0, le=100)
    """A gift created or paid from this fraction of the per-gift limit up: mass creation
    at the limits."""
    near_daily_fraction: float = Field(gt=0, le=1)
    near_daily_min_gifts: int = Field(ge=2)
    near_daily_points: int = Field(ge=0, le=100)
    """A gift created or paid when the giver's gifts of the day (this one included) are at
    least ``near_daily_min_gifts`` and add up to this fraction of the daily amount limit."""
    refund_burst_count: int = Field(ge=2)
    refund_burst_window: str
    refund_burst_points: int = Field(ge=0, le=100)
    """Refund requests of one giver in a short window, before the daily limit is reached."""
    spree_gifts: int = Field(ge=2)
    spree_window: str
    """A refund request from a giver who created this many gifts in the window: buying
    gifts to refund them (scored with the burst's points)."""


class Detection(_Frozen):
    """Combinations of signals scored beside the seed's factors and outside their caps
    (``engine.detection``): off in the ``seed`` profile."""

    enabled: bool
    established_after: str
    """A device, country or payee is the user's own once seen at least this long before:
    the minutes of a takeover session do not make the fraudster's device "known"."""
    account_takeover: AccountTakeover
    card_testing: CardTesting
    structuring: Structuring
    anonymised: AnonymisedNetwork
    login: LoginDetection
    gift: GiftDetection


class RuleSet(_Frozen):
    version: str = Field(min_length=1)
    validation: ValidationPolicy
    bands: Bands
    decision: DecisionThresholds
    velocity: Velocity
    gift: GiftRules
    capypay: CapyPay
    sync: SyncPolicy
    entities: Entities
    lists: ListRules
    screening: ScreeningRules
    cases: CaseRules
    alerts: AlertRules
    model: ModelRules
    detection: Detection

    @model_validator(mode="after")
    def _windows_exist(self) -> RuleSet:
        named = {
            self.capypay.velocity.hour_window,
            self.capypay.velocity.day_window,
            self.capypay.amount.average_window,
            self.capypay.amount.pattern_window,
            self.capypay.behavioral.usual_hours_window,
            self.capypay.login_velocity.window,
            *(
                options.velocity.hour_window
                for options in self.capypay.actions.values()
                if options.velocity is not None
            ),
            self.gift.limits.day_window,
            self.gift.limits.refund_window,
            self.gift.patterns.rapid_creation_window,
            self.gift.patterns.code_attempts_window,
            self.gift.consecutive_failures.window,
            *(feature_window(f) for f in self.sync.mirrored_counters),
            *(limit.window for limit in self.entities.limits),
            *self.model.user_windows,
            *self.model.known_fraud_windows,
            self.model.batch.amount_window,
            self.detection.established_after,
            self.detection.card_testing.window,
            self.detection.card_testing.after_window,
            self.detection.gift.refund_burst_window,
            self.detection.gift.spree_window,
            self.detection.structuring.window,
        }
        unknown = sorted(set(named) - set(self.velocity.windows))
        if unknown:
            raise ValueError(f"unknown velocity window(s): {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _redeemers_counted(self) -> RuleSet:
        if BlockedEntityType.DEVICE not in self.entities.tracked:
            raise ValueError(
                "gift.consecutive_failures counts each redeemer's device: "
                "entities.tracked must include device"
            )
        return self


class RulesError(Exception):
    """The rules file is missing or invalid; the message is one line for the operator."""


def default_rules_path() -> Path:
    return Path(str(resources.files("config").joinpath("rules.toml")))


def seed_rules_path() -> Path:
    """The seed profile (``config/rules.seed.toml``): the seeds' weights, no combinations."""
    return default_rules_path().with_name("rules.seed.toml")


def default_challenger_path() -> Path:
    """The shipped challenger (``config/challenger.toml``), used by the demo."""
    return Path(str(resources.files("config").joinpath("challenger.toml")))


def parse_rules(text: str, source: str, base_dir: Path | None = None) -> RuleSet:
    """Rules from TOML text; ``source`` names where it came from in error messages. A file
    with ``extends = "<file>"`` states only what differs from that file, found in
    ``base_dir`` (default: the shipped rules' folder, where a pushed profile's base is)."""
    return _validated(_extended(_toml(text, source), source, base_dir), source)


def _extended(raw: dict[str, object], source: str, base_dir: Path | None) -> dict[str, object]:
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or "/" in base or "\\" in base:
        raise RulesError(f"rules file {source}: extends must name a file beside it")
    path = (base_dir or default_rules_path().parent) / base
    below = _toml(_read(path), str(path))
    if "extends" in below:
        raise RulesError(f"rules file {source}: {base} extends another file (one level only)")
    return _merge(below, raw)


def _toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {source} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise RulesError(f"rules file {source} is not valid TOML: nested too deeply") from None


def _validated(raw: dict[str, object], source: str) -> RuleSet:
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"rules file {source}: {describe_validation_error(exc)}") from None


def load_rules(path: Path | None = None) -> RuleSet:
    path = path or default_rules_path()
    return parse_rules(_read(path), str(path), path.parent)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None


def load_challenger(base: Path, overlay: Path) -> RuleSet:
    """A challenger's rules: ``base`` with the keys of ``overlay`` replacing its own (tables
    merged key by key), so a challenger file says only what differs from the champion."""
    champion = _extended(_toml(_read(base), str(base)), str(base), base.parent)
    return _validated(_merge(champion, _toml(_read(overlay), str(overlay))), str(overlay))


def _merge(base: dict[str, object], overlay: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in overlay.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


class LiveRules:
    """The rules in force in a worker, replaced at runtime by config-topic records.

    A new version replaces the current one; the same version with the same content is a
    no-op (re-delivery, replay); the same version with other content, or anything invalid, is
    rejected and the rules in force stay. Every decision names the version it used.

    >>> live = LiveRules(load_rules())
    >>> text = default_rules_path().read_text()
    >>> live.apply(text.replace(live.current.version, "2099.1"), "topic").applied
    True
    >>> live.current.version
    '2099.1'
    >>> live.apply("version = ", "topic").error
    'rules file topic is not valid TOML: Invalid value (at end of document)'
    """

    def __init__(self, rules: RuleSet) -> None:
        self.current = rules

    def apply(self, text: str, source: str) -> ApplyOutcome:
        try:
            candidate = parse_rules(text, source)
        except RulesError as exc:
            return ApplyOutcome(applied=False, error=str(exc))
        if candidate.version == self.current.version:
            if candidate == self.current:
                return ApplyOutcome(applied=False, error=None)
            return ApplyOutcome(
                applied=False,
                error=f"rules from {source} change content but keep version "
                f"{candidate.version!r}: bump the version",
            )
        self.current = candidate
        return ApplyOutcome(applied=True, error=None)


@dataclass(frozen=True)
class ApplyOutcome:
    applied: bool
    error: str | None
