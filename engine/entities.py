"""Entities seen across subjects (IPs, devices, cards, accounts, documents, terminals,
counterparties): their keys, windows and rate limits (pure).

An event is decided with its subject's state; each tracked entity it names also gets the event
recorded in a state of its own, keyed ``<entity>:<id>``, e.g. ``ip:<keyed hash>`` or
``device:<id>`` (an IP is never kept in clear). Crossing a configured limit blocks the entity
from the event's time on; the block is placed once, not again while it lasts.

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

from config.rules import Entities
from engine.admission import subject_of
from engine.features import observe
from engine.velocity import VelocityState
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


def record_entity(
    state: VelocityState,
    event: InputEvent,
    entity: BlockedEntityType,
    entity_id: str,
    entities: Entities,
    windows: dict[str, int],
    horizon_s: int,
) -> list[FraudBlock]:
    """Count ``event`` for the entity; the blocks its limits place (at most once each while
    they last).

    Events reach an entity out of order (each was decided on its own subject's partition
    first), so a limit is checked over the window ending at the newest event the entity has
    seen, not at this event's time. A re-delivered event is not counted again but gets back
    the blocks it placed the first time, in case they were not published then.
    """
    # In an entity's windows the counterparty is the subject that used it.
    obs = observe(event, counterparty=subject_of(event).key)
    durations = {limit.reason: limit.block_seconds for limit in entities.limits}
    if not state.record(obs, horizon_s):
        placed = state.features_of(event.event_id) or {}
        return [
            _block(entity, entity_id, reason, event, at_ms, durations[reason])
            for reason, at_ms in ((r.removeprefix(_PLACED), ms) for r, ms in placed.items())
            if reason in durations  # a limit since removed places nothing again
        ]
    newest_ms = (state.watermark_s or 0) * 1000
    blocks, placed = [], {}
    for limit in entities.limits:
        if limit.entity is not entity or limit.metric != obs.metric:
            continue
        stats = state.window(obs.metric, newest_ms, windows[limit.window])
        if getattr(stats, limit.measure) <= limit.max or limit.reason in state.active_blocks(
            newest_ms
        ):
            continue
        block = _block(entity, entity_id, limit.reason, event, newest_ms, limit.block_seconds)
        state.block(limit.reason, int(block.expires_at.timestamp() * 1000))
        placed[_PLACED + limit.reason] = newest_ms
        blocks.append(block)
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

    def apply(self, block: FraudBlock) -> None:
        if block.entity_type in SUBJECT_ENTITY_TYPES:
            return  # subjects' blocks live in their own state
        key = entity_key(block.entity_type, block.entity_id)
        until_ms = int(block.expires_at.timestamp() * 1000)
        self._until[key] = max(until_ms, self._until.get(key, 0))

    def blocked(self, keys: list[str], at_ms: int) -> bool:
        return any(self._until.get(key, 0) > at_ms for key in keys)
