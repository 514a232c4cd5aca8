"""Entities seen across subjects (IPs, devices, cards, accounts, documents, terminals,
counterparties): their keys, windows and rate limits (pure).

An event is decided with its subject's state; each tracked entity it names also gets the event
recorded in a state of its own, keyed ``<entity>:<id>``, e.g. ``ip:<keyed hash>`` or
``device:<id>`` (an IP is never kept in clear). Crossing a configured limit blocks the entity
from the event's time on; the block is placed once, not again while it lasts. A device's
windows also hold GiftPix's consecutive code failures (``failures_in_a_row``).

>>> from config.rules import load_rules
>>> from tests.factories import gift
>>> event = gift(ip="203.0.113.7", device_id="d1", recipient_key_hash=None)
>>> keys = entity_keys(event, load_rules().entities, b"k")
>>> sorted(k.split(":")[0] for k in keys), "203.0.113.7" in "".join(keys)
(['device', 'ip'], False)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from config.rules import ConsecutiveFailures, Entities
from engine.admission import is_redemption_step, subject_of
from engine.features import REDEEM_FAILED, REDEEM_OK, observe
from engine.velocity import Features, VelocityState
from schemas.models import (
    SUBJECT_ENTITY_TYPES,
    BlockedEntityType,
    FraudBlock,
    GiftEvent,
    InputEvent,
    LoginEvent,
    TransactionEvent,
)

SEPARATOR = ":"
_KEY_PREFIX = {entity: f"{entity.value}{SEPARATOR}" for entity in BlockedEntityType}
"""Formatted once: reading an enum member's ``value`` runs Python code."""


@lru_cache(maxsize=65_536)
def keyed_id(value: str, key: bytes) -> str:
    """The keyed hash an IP (or a counterparty wallet or bank account) is known by:
    HMAC-SHA256 of the trimmed, lower-cased value, first 32 hex digits. Cached: the same
    IPs recur from event to event (in the worker's memory only)."""
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def entity_key(entity: BlockedEntityType, entity_id: str) -> str:
    return _KEY_PREFIX[entity] + entity_id


def entity_keys(event: InputEvent, entities: Entities, hash_key: bytes) -> list[str]:
    """Keys of the tracked entities the event names (none when it names none)."""
    return named_entity_keys(event, entities.tracked, hash_key)


def named_entity_keys(
    event: InputEvent, types: Collection[BlockedEntityType], hash_key: bytes
) -> list[str]:
    """Keys of the entities of these ``types`` that the event names, in the types'
    declared order."""
    return [
        entity_key(entity, value)
        for entity, value in _named_entities(event, hash_key).items()
        if value is not None and entity in types
    ]


def _named_entities(event: InputEvent, hash_key: bytes) -> dict[BlockedEntityType, str | None]:
    """Entity id by type for what the event names, in the types' declared order; values that
    could identify a person (IP, counterparty wallet or bank account) only as keyed
    hashes."""
    ip = keyed_id(event.ip, hash_key) if event.ip else None
    match event:
        case TransactionEvent():
            return {
                BlockedEntityType.IP: ip,
                BlockedEntityType.DEVICE: event.device_id,
                BlockedEntityType.CARD: event.card_id,
                BlockedEntityType.ACCOUNT: event.account_id,
                BlockedEntityType.DOCUMENT: event.document_hash,
                BlockedEntityType.TERMINAL: event.terminal_id,
                BlockedEntityType.COUNTERPARTY: _counterparty(event, hash_key),
            }
        case LoginEvent():
            return {BlockedEntityType.IP: ip, BlockedEntityType.DEVICE: event.device_fingerprint}
        case GiftEvent():
            recipient = event.recipient_key_hash
            return {
                BlockedEntityType.IP: ip,
                BlockedEntityType.DEVICE: event.device_id,
                BlockedEntityType.COUNTERPARTY: f"pix{SEPARATOR}{recipient}" if recipient else None,
            }
    raise TypeError(f"not an input event: {type(event).__name__}")


def _counterparty(event: TransactionEvent, hash_key: bytes) -> str | None:
    """Who receives the money: its PIX key (already hashed upstream), else its wallet or bank
    account (hashed here); a merchant or terminal is not a counterparty entity."""
    if event.counterparty_pix_key_hash:
        return f"pix{SEPARATOR}{event.counterparty_pix_key_hash}"
    for kind, value in (
        ("wallet", event.counterparty_wallet),
        ("bank", event.counterparty_bank_account),
    ):
        if value:
            return f"{kind}{SEPARATOR}{keyed_id(value, hash_key)}"
    return None


def parse_entity_key(key: str) -> tuple[BlockedEntityType, str] | None:
    """``ip:ab12`` -> (IP, ``ab12``); None for a key that is not a tracked-entity key."""
    kind, separator, entity_id = key.partition(SEPARATOR)
    if not separator or kind not in _ENTITY_TYPES:
        return None
    return BlockedEntityType(kind), entity_id


_ENTITY_TYPES = frozenset(BlockedEntityType) - SUBJECT_ENTITY_TYPES


CONSECUTIVE_FAILURES = "GIFT_CONSECUTIVE_FAILURES"
"""The reason of the block that consecutive wrong codes place on their redeemer."""
REDEEMER = BlockedEntityType.DEVICE
"""The entity a redeemer is known by, for GiftPix's "falhas consecutivas" (seed 5.2).

A redemption is decided with its gift, on the gift's partition, which sees no other gift's
attempts; the redeemer's run of wrong codes across gifts needs windows of the redeemer's own.
Of what a redemption attempt names, the device the codes are entered from is the one that
stands for the person entering them:

- it is there on anonymous redemptions too: ``redeemer_user_id`` is set only when the
  redeemer is logged in, and someone guessing codes need not log in;
- unlike an IP, it is not shared by strangers (carrier and office NAT put many people behind
  one address, and the seed lists "dependência excessiva de IP" among its risks); the IP has
  a limit of its own (``IP_REDEMPTION_RATE_LIMIT``);
- the seed names it for redemptions ("Bloqueio por IP / fingerprint");
- it is a tracked entity: its state counts its attempts on every gift, and its blocks reach
  every worker through the fraud-blocks topic (and callers through the Redis mirror). A user
  is a subject instead: a block in its state would stop its own gift creations and refunds,
  and would not reach the decisions of the gifts it tries to redeem.

An attempt that names no device is not counted here (the gift's own limits and the IP's
still apply).
"""
CODE_SPRAYING = frozenset({"DEVICE_CODE_SPRAYING", "IP_CODE_SPRAYING"})
"""The reasons of the entity limits on wrong codes across gifts (``[[entities.limits]]``): a
code sprayed over gifts stops the device's or IP's redemptions, not its other actions (many
people share an IP)."""
REDEMPTION_ONLY_REASONS = frozenset({CONSECUTIVE_FAILURES, *CODE_SPRAYING})
"""Blocks that stop the entity's redemption steps only; an entity's other blocks stop every
action naming it."""


def block_stops(reason: str, event: InputEvent) -> bool:
    """Whether an entity block for ``reason`` stops ``event``, an action naming the entity."""
    return reason not in REDEMPTION_ONLY_REASONS or is_redemption_step(event)


def failures_in_a_row(
    state: VelocityState, at_ms: int, rule: ConsecutiveFailures, windows: dict[str, int]
) -> int:
    """The wrong codes a redeemer entered in a row up to ``at_ms``: those within the rule's
    window after its latest correct code and after the end of its latest block for them (the
    wrong codes entered while blocked do not place the next block).

    Buckets are one second long, so a correct code resets the wrong ones of its own second.

    >>> from config.rules import load_rules
    >>> from engine.velocity import Observation
    >>> rules, state = load_rules(), VelocityState()
    >>> for n, metric in enumerate(["redeem_failed", "redeem_ok", "redeem_failed"]):
    ...     _ = state.record(Observation(f"e{n}", n * 1000, metric), 3600)
    >>> failures_in_a_row(state, 2000, rules.gift.consecutive_failures, rules.velocity.windows)
    1
    """
    at_s = at_ms // 1000
    after_s = at_s - windows[rule.window]
    last_correct = state.previous_second(REDEEM_OK, at_ms)
    if last_correct is not None:
        after_s = max(after_s, last_correct)
    blocked_until_ms = state.block_expiry(CONSECUTIVE_FAILURES)
    if blocked_until_ms is not None:
        after_s = max(after_s, (blocked_until_ms - 1) // 1000)  # its last blocked second
    if after_s >= at_s:
        return 0
    return state.window(REDEEM_FAILED, at_ms, at_s - after_s).count


def record_entity(
    state: VelocityState,
    event: InputEvent,
    entity: BlockedEntityType,
    entity_id: str,
    entities: Entities,
    consecutive: ConsecutiveFailures,
    windows: dict[str, int],
    horizon_s: int,
) -> list[FraudBlock]:
    """Count ``event`` for the entity; the blocks its limits place (at most once each while
    they last), and for a redeemer's device, the block of ``consecutive`` wrong codes.

    Events reach an entity out of order (each was decided on its own subject's partition
    first), so a limit is checked over the window ending at the newest event the entity has
    seen, not at this event's time. A re-delivered event is not counted again but gets back
    the blocks it placed the first time, in case they were not published then.
    """
    # In an entity's windows the counterparty is the subject that used it.
    obs = observe(event, counterparty=subject_of(event).key)
    durations = {limit.reason: limit.block_seconds for limit in entities.limits}
    durations[CONSECUTIVE_FAILURES] = consecutive.block_seconds
    if not state.record(obs, horizon_s):
        before = state.features_of(event.event_id) or {}
        return [
            _block(entity, entity_id, reason, event, at_ms, durations[reason])
            for reason, at_ms in ((r.removeprefix(_PLACED), ms) for r, ms in before.items())
            if reason in durations  # a limit since removed places nothing again
        ]
    newest_ms = (state.watermark_s or 0) * 1000
    blocks: list[FraudBlock] = []
    placed: Features = {}

    def place(reason: str, seconds: int) -> None:
        """Block the entity from its newest event on, and remember it for re-deliveries."""
        block = _block(entity, entity_id, reason, event, newest_ms, seconds)
        state.block(reason, int(block.expires_at.timestamp() * 1000), newest_ms)
        placed[_PLACED + reason] = newest_ms
        blocks.append(block)

    for limit in entities.limits:
        if limit.entity is not entity or limit.metric != obs.metric:
            continue
        stats = state.window(obs.metric, newest_ms, windows[limit.window])
        if getattr(stats, limit.measure) <= limit.max or limit.reason in state.active_blocks(
            newest_ms
        ):
            continue
        place(limit.reason, limit.block_seconds)
    if (
        entity is REDEEMER
        and obs.metric == REDEEM_FAILED
        and failures_in_a_row(state, newest_ms, consecutive, windows) >= consecutive.failures
    ):
        place(CONSECUTIVE_FAILURES, consecutive.block_seconds)
    state.remember(event.event_id, placed)
    return blocks


_PLACED = "placed:"


def _block(
    entity: BlockedEntityType,
    entity_id: str,
    reason: str,
    event: InputEvent,
    at_ms: int,
    seconds: int,
) -> FraudBlock:
    created_at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return FraudBlock(
        entity_type=entity,
        entity_id=entity_id,
        reason=reason,
        event_id=event.event_id,
        created_at=created_at,
        expires_at=created_at + timedelta(seconds=seconds),
    )


class BlockView:
    """A worker's view of the blocks on entities (IPs, devices, cards...), fed from the fraud-blocks
    topic, which every worker reads whole: an entity's block is placed by the worker owning
    the entity, and enforced by whichever worker decides the next event naming it."""

    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._redemptions_until: dict[str, int] = {}  # REDEMPTION_ONLY_REASONS

    def apply(self, block: FraudBlock) -> None:
        """Unlike a subject's blocks, an entity's reach back to the events decided after it
        whatever their time: the limit's own burst arrives out of order over the gifts' or
        users' partitions, and its late events are part of what crossed it."""
        if block.entity_type in SUBJECT_ENTITY_TYPES:
            return  # subjects' blocks live in their own state
        key = entity_key(block.entity_type, block.entity_id)
        until_ms = int(block.expires_at.timestamp() * 1000)
        until = self._redemptions_until if block.reason in REDEMPTION_ONLY_REASONS else self._until
        until[key] = max(until_ms, until.get(key, 0))

    def blocked(self, keys: list[str], at_ms: int, redemption: bool) -> bool:
        """Whether a block in force at ``at_ms`` on one of ``keys`` stops an action naming
        them; ``redemption``: the action is a redemption step."""
        if any(self._until.get(key, 0) > at_ms for key in keys):
            return True
        return redemption and any(self._redemptions_until.get(key, 0) > at_ms for key in keys)
