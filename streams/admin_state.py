"""What the admin API and CLI see: the lists (a followed ``ListView``), the watchlist of names
to screen, the investigation cases and the frozen accounts, plus the producer that publishes
list changes (and their audit records), watchlist names, case commands and account changes.

Writes are applied to the local view as soon as the broker has them, so a read right after a
write sees it; the workers see it when their own follower reads the record (milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from engine.accounts import AccountView
from engine.audit import account_state_record, list_change_record
from engine.list_import import ListRow
from engine.lists import (
    entry_from_row,
    entry_id,
    removal_of,
    value_key_of,
)
from engine.screening import NameScreener, WatchlistEntry
from schemas.codec import DecodeError, WireCodec
from schemas.models import (
    AccountState,
    AuditActor,
    AuditRecord,
    Case,
    CaseCommand,
    ListEntityType,
    ListEntry,
    ListKind,
    WatchlistName,
    WireModel,
)
from streams.ops import Check
from streams.reader import follow_topics
from streams.topics import Topics
from streams.views import default_list_view


class AdminState:
    def __init__(self, bootstrap_servers: str, topics: Topics, hash_key: bytes) -> None:
        self.bootstrap_servers, self.topics, self.hash_key = bootstrap_servers, topics, hash_key
        self.view = default_list_view(hash_key)
        self.history: list[ListEntry] = []  # every record of the lists topic, in read order
        self.watchlist: dict[str, WatchlistName] = {}
        self.cases: dict[str, Case] = {}
        self.accounts = AccountView()
        self._case_changed = asyncio.Condition()
        self._screener: NameScreener | None = None
        self.codec = WireCodec()
        self._producer: AIOKafkaProducer | None = None
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; read the topics to their end (what they held is there for the first
        request), then keep following them."""
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await self._producer.start()
        loaded = asyncio.Event()
        followed = [
            self.topics.lists,
            self.topics.watchlist,
            self.topics.cases,
            self.topics.account_states,
        ]
        self._follower = asyncio.create_task(
            follow_topics(self.bootstrap_servers, followed, self._take, "admin state", loaded.set)
        )
        waiting = asyncio.create_task(loaded.wait())
        try:
            await asyncio.wait([waiting, self._follower], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if self._follower.done():
            self._follower.result()  # it failed before catching up: say why

    def check(self) -> Check:
        """Readiness: the topics read to their end at start, and followed since."""
        if self._follower is None or self._follower.done():
            return Check(False, "not following the lists, cases and accounts topics")
        counts = f"{len(self.view.entries())} list entries, {len(self.cases)} cases"
        return Check(True, f"{counts}, {len(self.accounts.frozen)} frozen accounts")

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._producer is not None:
            await self._producer.stop()

    async def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            if record.topic == self.topics.watchlist and record.key is not None:
                self._unlisted(record.key.decode())  # a name taken off the watchlist
            return
        try:
            if record.topic == self.topics.watchlist:
                self._listed(self.codec.decode(record.value, (WatchlistName,)))
                return
            if record.topic == self.topics.cases:
                await self._case(self.codec.decode(record.value, (Case,)))
                return
            if record.topic == self.topics.account_states:
                self.accounts.apply(self.codec.decode(record.value, (AccountState,)))
                return
            entry = self.codec.decode(record.value, (ListEntry,))
        except DecodeError:
            return  # the workers log unreadable records; nothing to show here
        self.history.append(entry)
        self.view.apply(entry)

    async def _case(self, case: Case) -> None:
        known = self.cases.get(case.case_id)
        if known is None or case.version >= known.version:
            self.cases[case.case_id] = case
            async with self._case_changed:
                self._case_changed.notify_all()

    async def send_case_command(self, command: CaseCommand) -> None:
        subject_key = f"{command.subject_type.value}:{command.subject_id}"
        await self._send(self.topics.case_commands, [(subject_key, command)])

    async def case_after(self, case_id: str, version: int, timeout_s: float) -> Case | None:
        """The case once a version newer than ``version`` is read (None: not in time)."""

        def newer() -> bool:
            case = self.cases.get(case_id)
            return case is not None and case.version > version

        async with self._case_changed:
            try:
                await asyncio.wait_for(self._case_changed.wait_for(newer), timeout_s)
            except TimeoutError:
                return None
        return self.cases[case_id]

    def _listed(self, name: WatchlistName) -> None:
        self.watchlist[name.entry_id] = name
        self._screener = None  # rebuilt on the next screening

    def _unlisted(self, entry_id: str) -> None:
        if self.watchlist.pop(entry_id, None) is not None:
            self._screener = None

    def screener(self, min_score: float) -> NameScreener:
        """The name screener over the watchlist as it is now (built once per change)."""
        if self._screener is None or self._screener.min_score != min_score:
            self._screener = NameScreener(
                [
                    WatchlistEntry(n.entry_id, n.name, tuple(n.aliases), None, n.list_name, n.kind)
                    for n in self.watchlist.values()
                ],
                min_score=min_score,
            )
        return self._screener

    async def add_names(self, names: list[WatchlistName]) -> None:
        await self._send(self.topics.watchlist, [(n.entry_id, n) for n in names])
        for name in names:
            self._listed(name)

    async def remove_names(self, entry_ids: list[str]) -> None:
        """Take names off the watchlist: a tombstone each (the compacted topic forgets them)."""
        await self._send(self.topics.watchlist, [(name, None) for name in entry_ids])
        for name in entry_ids:
            self._unlisted(name)

    def find(self, kind: ListKind, entity_type: ListEntityType, raw: str) -> ListEntry | None:
        """The entry listing ``raw`` (InvalidListValue for an invalid value)."""
        value_key = value_key_of(entity_type, raw, self.hash_key)
        return self.view.get(entry_id(kind, entity_type, value_key))

    def listing(self, kind: ListKind, entity_type: ListEntityType, raw: str) -> list[ListEntry]:
        """The entries not removed that list ``raw``: its own, then the engine's derived ones
        (InvalidListValue for an invalid value)."""
        return self.view.listing(kind, entity_type, value_key_of(entity_type, raw, self.hash_key))

    async def add(
        self,
        rows: Iterable[ListRow],
        kind: ListKind,
        actor: AuditActor,
        at: datetime,
        correlation_id: str | None = None,
    ) -> list[ListEntry]:
        entries = [entry_from_row(row, kind, self.hash_key, actor.id, at) for row in rows]
        await self._publish(entries, actor, at, correlation_id)
        return entries

    async def remove_all(
        self,
        entries: Iterable[ListEntry],
        actor: AuditActor,
        at: datetime,
        correlation_id: str | None = None,
    ) -> list[ListEntry]:
        removed = [removal_of(entry, actor.id, at) for entry in entries]
        await self._publish(removed, actor, at, correlation_id)
        return removed

    async def change_account(self, state: AccountState, actor: AuditActor) -> None:
        """Freeze or unfreeze an account, with its audit record (previous and new state)."""
        audit = account_state_record(actor, self.accounts.states.get(state.user_id), state)
        await self._send(self.topics.account_states, [(state.user_id, state)])
        await self.audit([audit])
        self.accounts.apply(state)

    async def audit(self, records: Iterable[AuditRecord]) -> None:
        await self._send(self.topics.audit_intake, [(r.audit_id, r) for r in records])

    async def _publish(
        self, entries: list[ListEntry], actor: AuditActor, at: datetime, correlation_id: str | None
    ) -> None:
        audits = [
            list_change_record(actor, self.view.get(e.entry_id), e, at, correlation_id)
            for e in entries
        ]
        await self._send(self.topics.lists, [(e.entry_id, e) for e in entries])
        await self.audit(audits)
        for entry in entries:
            self.view.apply(entry)

    async def _send(self, topic: str, records: Iterable[tuple[str, WireModel | None]]) -> None:
        """Publish keyed records (None: a tombstone); returns once the broker has them all."""
        if self._producer is None:
            raise RuntimeError("AdminState.start() was not awaited")
        producer = self._producer
        sends = [
            await producer.send(
                topic, None if record is None else self.codec.encode(record), key=key.encode()
            )
            for key, record in records
        ]
        await asyncio.gather(*sends)
