"""Block and allow lists: which entries an event hits, and what the hits are worth (pure).

Every worker keeps the whole of both lists in a :class:`ListView`, fed from the compacted
lists topic, so a change reaches scoring without a restart. Entries hold keyed hashes, never
values: an event is matched by hashing what it carries in clear (user id, IP, wallet, bank
account) and by the hashes upstream already puts in its ``*_hash`` fields, which use the same
key and normalisation (``engine.identities``). A hashed PIX key is also looked up as the
e-mail, phone or document it may be. IP ranges are matched by prefix.

A listed e-mail, phone or CPF/CNPJ seen on a user's own transaction or successful login also
lists that user (``links_for``): an entry the engine derives, in force while the entry it
follows is, so the user's events that carry no identity (their gifts) are screened too.

The hits become integer features (``list.block.<type>.<SEVERITY>.<SOURCE>.<mask>``, and
``list.allow.`` likewise), published with the decision and remembered with the event's other
features, so a re-delivered event gets the same decision even if the lists changed meanwhile.

>>> from datetime import UTC, datetime
>>> from tests import factories
>>> view = ListView()
>>> key = b"k"
>>> view.apply(new_entry(ListKind.BLOCK, ListEntityType.USER, "u-1", key, ListSeverity.HIGH,
...     ListSource.MANUAL, "chargeback ring", "analyst-1", datetime(2026, 1, 1, tzinfo=UTC)))
>>> hits = view.hits(factories.transaction(user_id="u-1"), key)
>>> list_features(hits)
{'list.block.user.HIGH.MANUAL.***1': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from config.rules import ListRules
from engine.accounts import ENGINE_ACTOR
from engine.identities import (
    CidrIndex,
    InvalidListValue,
    domains_within,
    keyed_hash,
    normalise,
)
from engine.list_import import ListRow
from engine.masking import mask_value
from engine.velocity import Features
from schemas.models import (
    GiftEvent,
    InputEvent,
    ListEntityType,
    ListEntry,
    ListKind,
    ListSeverity,
    ListSource,
    LoginEvent,
    Reason,
    TransactionEvent,
)

WHITELIST_OVERRIDE = "WHITELIST_OVERRIDE"
BLOCK_PREFIX = "list.block."
ALLOW_PREFIX = "list.allow."
_SEVERITY_ORDER = list(ListSeverity)

# A hash upstream computed for a PIX key may be the hash of an e-mail, phone or CPF/CNPJ
# (one normalisation, one key, no type in the hash): look it up as each of them too.
_PIX_KEY_ALSO = (ListEntityType.EMAIL, ListEntityType.PHONE, ListEntityType.DOCUMENT)


def entry_id(kind: ListKind, entity_type: ListEntityType, value_key: str) -> str:
    return f"{kind.value}:{entity_type.value}:{value_key}"


LINK_SEPARATOR = "~"
"""Between a derived entry's origin and its own id (URL-safe: ids name entries in the API)."""


@lru_cache(maxsize=65_536)
def value_key_of(entity_type: ListEntityType, raw: str, key: bytes) -> str:
    """How a raw value is known in the lists: its keyed hash, or the canonical CIDR of a
    range. Raises ``InvalidListValue`` (one line, value masked) for an invalid value.
    Cached: every event looks its parties up, and the same users, IPs and domains recur
    (the cache lives in the worker's memory only, like the events themselves)."""
    return _key_of(entity_type, normalise(entity_type, raw), key)


def _key_of(entity_type: ListEntityType, normalised: str, key: bytes) -> str:
    return normalised if entity_type is ListEntityType.IP_RANGE else keyed_hash(normalised, key)


def new_entry(
    kind: ListKind,
    entity_type: ListEntityType,
    raw: str,
    key: bytes,
    severity: ListSeverity,
    source: ListSource,
    reason: str,
    actor: str,
    at: datetime,
    expires_at: datetime | None = None,
) -> ListEntry:
    """An entry for ``raw``, which is hashed and masked here and kept nowhere."""
    normalised = normalise(entity_type, raw)
    value_key = _key_of(entity_type, normalised, key)
    return ListEntry(
        entry_id=entry_id(kind, entity_type, value_key),
        list_kind=kind,
        entity_type=entity_type,
        value_key=value_key,
        masked_value=mask_value(entity_type.value, normalised),
        severity=severity,
        source=source,
        reason=reason,
        created_at=at,
        created_by=actor,
        expires_at=expires_at,
    )


def entry_from_row(row: ListRow, kind: ListKind, key: bytes, actor: str, at: datetime) -> ListEntry:
    """An entry for an imported (or posted) row."""
    return new_entry(
        kind,
        row.entity_type,
        row.value,
        key,
        row.severity,
        row.source,
        row.reason,
        actor,
        at,
        row.expires_at,
    )


def removal_of(entry: ListEntry, actor: str, at: datetime) -> ListEntry:
    """The entry as removed: kept, with who removed it and when, for the audit trail."""
    return entry.model_copy(update={"removed_at": at, "removed_by": actor})


def event_identities(event: InputEvent, key: bytes) -> list[tuple[ListEntityType, str]]:
    """Every (type, value key) under which the event's parties may be listed."""
    raw: list[tuple[ListEntityType, str | None]] = []
    hashed: list[tuple[ListEntityType, str | None]] = []
    match event:
        case TransactionEvent():
            raw = [
                (ListEntityType.USER, event.user_id),
                *_domains(event.email_domain),
                (ListEntityType.WALLET, event.counterparty_wallet),
                (ListEntityType.BANK_ACCOUNT, event.counterparty_bank_account),
                (ListEntityType.IP, event.ip),
            ]
            hashed = [
                (ListEntityType.EMAIL, event.email_hash),
                (ListEntityType.PHONE, event.phone_hash),
                (ListEntityType.DOCUMENT, event.document_hash),
                (ListEntityType.PIX_KEY, event.counterparty_pix_key_hash),
            ]
        case LoginEvent():
            raw = [
                (ListEntityType.USER, event.user_id),
                *_domains(event.email_domain),
                (ListEntityType.IP, event.ip),
            ]
            typed = event.login_identifier_hash  # an e-mail, CPF or phone: any of the three
            hashed = [
                (ListEntityType.EMAIL, event.email_hash),
                *((also, typed) for also in _PIX_KEY_ALSO),
            ]
        case GiftEvent():
            raw = [
                (ListEntityType.USER, event.giver_user_id),
                (ListEntityType.USER, event.redeemer_user_id),
                (ListEntityType.IP, event.ip),
            ]
            hashed = [
                (ListEntityType.PIX_KEY, event.recipient_key_hash),
                (ListEntityType.PIX_KEY, event.refund_destination_hash),
                (ListEntityType.EMAIL, event.email_hash),
                (ListEntityType.PHONE, event.phone_hash),
                (ListEntityType.DOCUMENT, event.document_hash),
            ]
    found: list[tuple[ListEntityType, str]] = []
    for entity_type, value in raw:
        if value is not None:
            try:
                found.append((entity_type, value_key_of(entity_type, value, key)))
            except InvalidListValue:
                continue  # e.g. a wallet spelling no list could hold: nothing to match
    for entity_type, value in hashed:
        if value is not None:
            found.append((entity_type, value))
            if entity_type is ListEntityType.PIX_KEY:
                found += [(also, value) for also in _PIX_KEY_ALSO]
    return list(dict.fromkeys(found))


def own_identities(event: InputEvent) -> list[tuple[ListEntityType, str]]:
    """The person identities (hashes) an event carries as its own user's, with that user:
    a transaction's, a successful login's; none for a gift event, whose identities may be
    its giver's or its redeemer's, nor a counterparty's PIX key."""
    match event:
        case TransactionEvent():
            hashed = [
                (ListEntityType.EMAIL, event.email_hash),
                (ListEntityType.PHONE, event.phone_hash),
                (ListEntityType.DOCUMENT, event.document_hash),
            ]
        case LoginEvent(success=True):
            hashed = [(ListEntityType.EMAIL, event.email_hash)]
        case _:
            return []
    return [(entity_type, value) for entity_type, value in hashed if value is not None]


def links_for(
    event: InputEvent, hits: Iterable[ListEntry], view: ListView, key: bytes
) -> list[ListEntry]:
    """The entries listing the event's user by the listed identities it carries as its own
    (``own_identities``): one per block entry hit on them, with its severity and expiry,
    unless the view already has it (an analyst's removal of a derived entry stands)."""
    listed = {
        (hit.entity_type, hit.value_key): hit
        for hit in hits
        if hit.list_kind is ListKind.BLOCK and hit.linked_from is None
    }
    user = getattr(event, "user_id", None)
    if not listed or user is None:
        return []
    own = own_identities(event)
    origins = [listed[identity] for identity in own if identity in listed]
    if not origins:
        return []
    value_key = value_key_of(ListEntityType.USER, user, key)
    own_id = entry_id(ListKind.BLOCK, ListEntityType.USER, value_key)
    masked = mask_value(ListEntityType.USER.value, normalise(ListEntityType.USER, user))
    new = {
        derived_id: origin
        for origin in origins
        if view.get(derived_id := origin.entry_id + LINK_SEPARATOR + own_id) is None
    }
    return [
        ListEntry(
            entry_id=derived_id,
            list_kind=ListKind.BLOCK,
            entity_type=ListEntityType.USER,
            value_key=value_key,
            masked_value=masked,
            severity=origin.severity,
            source=ListSource.AUTOMATED,
            reason=f"same user as the listed {origin.entity_type.value} {origin.masked_value}",
            created_at=event.occurred_at,
            created_by=ENGINE_ACTOR,
            expires_at=origin.expires_at,
            linked_from=origin.entry_id,
        )
        for derived_id, origin in new.items()
    ]


DEFAULTS_ACTOR = "defaults"


def _domains(domain: str | None) -> list[tuple[ListEntityType, str | None]]:
    """An e-mail domain and the domains above it (``a.tempmail.org`` -> ``tempmail.org``)."""
    return [(ListEntityType.EMAIL_DOMAIN, d) for d in domains_within(domain)] if domain else []


class ListView:
    """A worker's copy of both lists: the latest record of every entry, by what it lists.

    Starts from ``defaults`` (the shipped entries); records from the lists topic are applied
    after them, so a default removed through the API stays removed.
    """

    def __init__(self, defaults: Iterable[ListEntry] = ()) -> None:
        self._entries: dict[str, ListEntry] = {}
        self._by_value: dict[tuple[ListEntityType, str], dict[str, ListEntry]] = {}
        self._ranges = CidrIndex()
        for entry in defaults:
            self.apply(entry)

    def apply(self, entry: ListEntry) -> None:
        """Take the entry's latest record (a removal too: it stays visible as removed)."""
        self._entries[entry.entry_id] = entry
        self._by_value.setdefault((entry.entity_type, entry.value_key), {})[entry.entry_id] = entry
        if entry.entity_type is ListEntityType.IP_RANGE:
            self._ranges.add(entry.entry_id, entry.value_key)

    def entries(self) -> list[ListEntry]:
        return list(self._entries.values())

    def get(self, entry_id: str) -> ListEntry | None:
        return self._entries.get(entry_id)

    def listing(
        self, kind: ListKind, entity_type: ListEntityType, value_key: str
    ) -> list[ListEntry]:
        """The entries not removed that list this value: its own entry first, then those the
        engine derived for it."""
        found = self._by_value.get((entity_type, value_key), {}).values()
        live = [e for e in found if e.list_kind is kind and e.removed_at is None]
        return sorted(live, key=lambda e: e.linked_from is not None)

    def matching(
        self, identities: Iterable[tuple[ListEntityType, str]], ip: str | None, at: datetime
    ) -> list[ListEntry]:
        """Entries in force at ``at`` listing any of ``identities``, or a range holding ``ip``."""
        found: dict[str, ListEntry] = {}
        for identity in identities:
            found.update(self._by_value.get(identity, {}))
        if ip is not None:
            for range_id in self._ranges.contains(ip):
                found[range_id] = self._entries[range_id]
        return [
            entry
            for entry in found.values()
            if entry.active_at(at) and self._origin_allows(entry, found, at)
        ]

    def _origin_allows(self, entry: ListEntry, found: dict[str, ListEntry], at: datetime) -> bool:
        """A derived entry counts while the entry it follows is in force, and not beside it
        (one listing, one match)."""
        if entry.linked_from is None:
            return True
        origin = self._entries.get(entry.linked_from)
        return origin is not None and origin.active_at(at) and origin.entry_id not in found

    def hits(self, event: InputEvent, key: bytes) -> list[ListEntry]:
        return self.matching(event_identities(event, key), event.ip, event.occurred_at)


def default_entries(rows: Iterable[ListRow], key: bytes, at: datetime) -> list[ListEntry]:
    return [entry_from_row(row, ListKind.BLOCK, key, DEFAULTS_ACTOR, at) for row in rows]


def list_features(hits: Iterable[ListEntry]) -> Features:
    """Hits as features, one per listed value: ``list.block.<type>.<SEVERITY>.<SOURCE>.<mask>``
    and ``list.allow.<type>.<SEVERITY>.<SOURCE>.<mask>`` (the mask, never the value, so the
    decision shows what matched)."""
    counts: Counter[str] = Counter()
    for hit in hits:
        prefix = ALLOW_PREFIX if hit.list_kind is ListKind.ALLOW else BLOCK_PREFIX
        parts = (hit.entity_type.value, hit.severity.value, hit.source.value, hit.masked_value)
        counts[prefix + ".".join(parts)] += 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class FeatureHit:
    """A list hit read back from its feature name (source and mask may be absent)."""

    entity_type: str
    severity: ListSeverity
    source: str | None
    masked_value: str | None
    count: int

    @property
    def shown(self) -> str:
        if self.source is None or self.masked_value is None:
            return f"{self.entity_type}.{self.severity.value}"
        return f"{self.entity_type} {self.masked_value} {self.severity.value} ({self.source})"


def feature_hits(features: Features, prefix: str) -> list[FeatureHit]:
    """The hits of one list (``BLOCK_PREFIX`` or ``ALLOW_PREFIX``) among ``features``."""
    found = []
    for name, count in features.items():
        if not name.startswith(prefix) or count <= 0:
            continue
        entity_type, severity, *rest = name.removeprefix(prefix).split(".", 3)
        source, masked = (rest[0], rest[1]) if len(rest) == 2 else (None, None)
        found.append(FeatureHit(entity_type, ListSeverity(severity), source, masked, count))
    return found


def top_block_severity(features: Features) -> ListSeverity | None:
    """The most severe block-list hit among ``features`` (None: no hit)."""
    severities = [hit.severity for hit in feature_hits(features, BLOCK_PREFIX)]
    return max(severities, key=_SEVERITY_ORDER.index) if severities else None


@dataclass(frozen=True)
class ListVerdict:
    """What the hits of one event amount to: the blacklist reason(s) and the most severe
    block-list severity in force (None when nothing is blocked or an allow entry overrides)."""

    reasons: list[Reason]
    severity: ListSeverity | None


NO_HITS = ListVerdict([], None)
"""The verdict of an event no list names."""


@dataclass(frozen=True)
class OtherHit:
    """A block-list match that is not a list entry (an active fraud block): worth ``points``
    alone, and one more match in the seed's multiple-match formula otherwise."""

    code: str
    points: int
    detail: str


def judge_hits(
    features: Features, rules: ListRules, others: Sequence[OtherHit] = ()
) -> ListVerdict:
    """The seed's blacklist scoring: the most severe match's points, plus a fixed amount per
    additional match, at most the maximum; any allow-list hit overrides all of it (and says
    so, so the override is visible in the decision and its audit record). Matches are the
    list hits and ``others``; each keeps its own reason, the most severe first with its
    points, each further one with the additional amount."""
    blocks = sorted(
        feature_hits(features, BLOCK_PREFIX),
        key=lambda hit: _SEVERITY_ORDER.index(hit.severity),
        reverse=True,
    )
    if not blocks and not others:
        return NO_HITS
    listed = "; ".join(
        f"{hit.shown} x{hit.count}" if hit.count > 1 else hit.shown for hit in blocks
    )
    allowed = feature_hits(features, ALLOW_PREFIX)
    if allowed:
        allowing = "; ".join(hit.shown for hit in allowed)
        overridden = "; ".join(filter(None, [listed, *[other.detail for other in others]]))
        detail = f"allow-listed {allowing} overrides block-list hits: {overridden}"
        return ListVerdict([Reason(code=WHITELIST_OVERRIDE, points=0, detail=detail)], None)
    matches: list[tuple[str, int, int, str]] = [
        (other.code, other.points, 1, other.detail) for other in others
    ]
    top = blocks[0].severity if blocks else None
    if top is not None:
        total = sum(hit.count for hit in blocks)
        detail = f"block-list hits: {listed}"
        matches.append(("BLACKLIST_LIST_HIT", rules.severity_points[top], total, detail))
    matches.sort(key=lambda match: match[1], reverse=True)  # stable: ties keep their order
    further = rules.additional_match_points
    reasons, score = [], 0
    for n, (code, alone, count, detail) in enumerate(matches):
        earned = (alone if n == 0 else further) + (count - 1) * further
        earned = min(earned, rules.max_points - score)
        if n > 0:
            detail += f" (a further match: +{further} each, max {rules.max_points})"
        elif count > 1:
            detail += f" ({alone} + {count - 1} more x {further}, max {rules.max_points})"
        score += earned
        reasons.append(Reason(code=code, points=earned, detail=detail))
    return ListVerdict(reasons, top)
