"""``atalaia feeds run|refresh|list``: list feeds refreshed from files or URLs.

The deployment names its feeds in a TOML file (``feeds_file``)::

    [[feeds]]
    name = "ofac-sdn"                  # letters, digits, - and _
    kind = "ofac-xml"                  # one of engine.feeds.FEED_KINDS
    source = "https://www.treasury.gov/ofac/downloads/sdn.xml"   # a URL or a file path
    # severity = "HIGH"                # optional: the kind's default otherwise
    # reason = "..."                   # optional
    # list = "BLOCK"                   # or ALLOW

``atalaia feeds run`` is the service: it refreshes every feed at start when its last success
is older than ``feeds_interval_hours`` (kept in ``<data_dir>/feeds-state.json``), then every
``feeds_interval_hours``, until SIGINT/SIGTERM. ``refresh`` runs them once now. Each run is
audited (``feed_refresh``, counts added/removed/unchanged) and every entry it changes has its
own list-change record. A source that cannot be read, or that yields nothing, changes
nothing: a feed is never emptied because a download failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
import tomllib
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.settings import Settings
from engine.audit import feed_refresh_record
from engine.feeds import FEED_KINDS, FeedDefaults, ScreenedName, feed_actor, plan_refresh
from engine.list_import import LineError, ListRow
from schemas.errors import describe_validation_error
from schemas.models import ActorType, AuditActor, ListKind, ListSeverity, WatchlistName
from streams.admin_state import AdminState
from streams.metrics import FEED_CHANGES, FEED_LAST_SUCCESS, FEED_RUNS, child_of
from streams.ops import Check, Readiness, operated
from streams.topics import Topics

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 120.0
MAX_FEED_BYTES = 256 * 1024 * 1024
RETRY_S = 3600.0
"""A feed whose refresh failed is tried again after this long (or its interval if shorter)."""


class FeedError(Exception):
    """A feed file or its source cannot be used; one line for the operator."""


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    kind: str
    source: Annotated[str, Field(min_length=1)]
    severity: ListSeverity | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    list_kind: ListKind = Field(default=ListKind.BLOCK, alias="list")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in FEED_KINDS:
            raise ValueError(f"not one of {', '.join(FEED_KINDS)}")
        return kind


class _FeedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feeds: list[FeedConfig]


def load_feeds(path: Path | None) -> list[FeedConfig]:
    if path is None:
        raise FeedError("no feeds configured: set ATALAIA_FEEDS_FILE to a feeds TOML file")
    if not path.is_file():
        raise FeedError(f"feeds file not found: {path}")
    try:
        feeds = _FeedsFile.model_validate(tomllib.loads(path.read_text())).feeds
    except tomllib.TOMLDecodeError as exc:
        raise FeedError(f"feeds file {path}: {exc}") from None
    except ValidationError as exc:
        raise FeedError(f"feeds file {path}: {describe_validation_error(exc)}") from None
    names = [feed.name for feed in feeds]
    if len(set(names)) != len(names):
        raise FeedError(f"feeds file {path}: a feed name is used twice")
    return feeds


def fetch(source: str, base: Path) -> bytes:
    """The bytes of a feed's source: an http(s) URL, or a file (relative to the feeds file)."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"User-Agent": "atalaia-feeds"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
                body: bytes = response.read(MAX_FEED_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise FeedError(f"cannot fetch {source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FeedError(f"cannot fetch {source}: {getattr(exc, 'reason', exc)}") from None
    else:
        path = Path(source.removeprefix("file://"))
        path = path if path.is_absolute() else base / path
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror}") from None
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(f"{source} is larger than {MAX_FEED_BYTES // 2**20} MiB")
    return unzipped(body, source)


def unzipped(body: bytes, source: str) -> bytes:
    """A zip's first file (government lists come zipped); any other body as it is."""
    if not body.startswith(b"PK\x03\x04"):
        return body
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if not names:
                raise FeedError(f"{source}: an empty zip")
            with archive.open(names[0]) as first:
                data: bytes = first.read(MAX_FEED_BYTES + 1)
    except zipfile.BadZipFile as exc:
        raise FeedError(f"{source}: not a readable zip ({exc})") from None
    if len(data) > MAX_FEED_BYTES:
        raise FeedError(f"{source}: its file is larger than {MAX_FEED_BYTES // 2**20} MiB")
    return data


@dataclass
class FeedRun:
    feed: str
    at: datetime
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    kept_elsewhere: int = 0
    names_added: int = 0
    names_removed: int = 0
    line_errors: int = 0
    failure: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "kept_elsewhere": self.kept_elsewhere,
            "names_added": self.names_added,
            "names_removed": self.names_removed,
            "line_errors": self.line_errors,
        }

    def summary(self) -> str:
        if self.failure:
            return f"{self.feed}: FAILED, nothing changed ({self.failure})"
        shown = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in self.counts.items() if n)
        return f"{self.feed}: {shown or 'nothing to change'}"


async def refresh_feed(
    store: AdminState, feed: FeedConfig, base: Path, clock: Callable[[], datetime]
) -> FeedRun:
    """Read the feed's source and bring the lists and the watchlist in line with it."""
    kind = FEED_KINDS[feed.kind]
    at = clock()
    run = FeedRun(feed.name, at)
    actor = AuditActor(type=ActorType.SYSTEM, id=feed_actor(feed.name))
    correlation = f"feed-{feed.name}-{uuid.uuid4().hex[:12]}"
    rows: list[ListRow] = []
    names: list[ScreenedName] = []
    try:
        body = await asyncio.to_thread(fetch, feed.source, base)
        defaults = FeedDefaults(
            feed.severity or kind.severity, kind.source, feed.reason or kind.reason, at.date()
        )
        for item in kind.parse(body, defaults):
            if isinstance(item, LineError):
                run.line_errors += 1
                if run.line_errors <= 5:
                    log.warning("feed %s: %s", feed.name, item)
            elif isinstance(item, ScreenedName):
                names.append(item)
            else:
                rows.append(item)
        if not rows and not names:
            raise FeedError(f"no entry could be read ({run.line_errors} lines refused)")
    except FeedError as exc:
        run.failure = str(exc)
    if run.failure is None:
        await _apply(store, feed, kind.list_name, rows, names, actor, run, correlation)
    record = feed_refresh_record(
        actor, feed.name, feed.kind, kind.source, run.counts, run.failure, at, correlation
    )
    await store.audit([record])
    _count(run)
    return run


async def _apply(
    store: AdminState,
    feed: FeedConfig,
    list_name: str,
    rows: list[ListRow],
    names: list[ScreenedName],
    actor: AuditActor,
    run: FeedRun,
    correlation: str,
) -> None:
    active = [e for e in store.view.entries() if e.active_at(run.at)]
    plan = plan_refresh(feed.name, feed.list_kind, rows, active, store.hash_key)
    known = {e.entry_id for e in active}
    added = await store.add(plan.add, feed.list_kind, actor, run.at, correlation)
    run.updated = sum(1 for e in added if e.entry_id in known)
    run.added = len(added) - run.updated
    run.removed = len(await store.remove_all(plan.remove, actor, run.at, correlation))
    run.unchanged, run.kept_elsewhere = plan.unchanged, plan.kept_elsewhere
    prefix = f"{feed.name}:"
    wanted = {
        prefix + n.entry_id: WatchlistName(
            entry_id=prefix + n.entry_id,
            list_name=list_name or feed.name,
            name=n.name,
            aliases=list(n.aliases),
            kind=n.kind,
            programs=[p[:64] for p in n.programs],
            listed_at=run.at,
        )
        for n in names
    }
    held = {key for key in store.watchlist if key.startswith(prefix)}
    fresh = [name for key, name in wanted.items() if key not in held]
    gone = sorted(held - wanted.keys())
    await store.add_names(fresh)
    await store.remove_names(gone)
    run.names_added, run.names_removed = len(fresh), len(gone)


def _count(run: FeedRun) -> None:
    child_of(FEED_RUNS, run.feed, "failed" if run.failure else "ok").inc()
    if run.failure:
        log.warning("feed %s", run.summary())
        return
    for change in ("added", "updated", "removed", "names_added", "names_removed"):
        count = run.counts[change]
        if count:
            child_of(FEED_CHANGES, run.feed, change).inc(count)
    FEED_LAST_SUCCESS.labels(run.feed).set(run.at.timestamp())
    log.info("feed %s", run.summary())


@dataclass
class FeedsState:
    """When each feed last succeeded (``<data_dir>/feeds-state.json``): a restarted service
    does not fetch again what it fetched an hour ago."""

    path: Path
    last_success: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> FeedsState:
        try:
            return cls(path, {k: float(v) for k, v in json.loads(path.read_text()).items()})
        except (OSError, ValueError, AttributeError):
            return cls(path)

    def record(self, run: FeedRun) -> None:
        if run.failure is None:
            self.last_success[run.feed] = run.at.timestamp()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.last_success, sort_keys=True))


def _now() -> datetime:
    return datetime.now(UTC)


async def _started_store(settings: Settings) -> AdminState:
    from streams.admin import ensure_topics

    await ensure_topics(settings)
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    store = AdminState(settings.bootstrap_servers, Topics(settings.topic_prefix), hash_key)
    await store.start()
    return store


def refresh_main(settings: Settings, only: str | None) -> int:
    """``atalaia feeds refresh``: every feed (or one) now; exit 1 if any failed."""
    feeds = load_feeds(settings.feeds_file)
    chosen = [feed for feed in feeds if only is None or feed.name == only]
    if not chosen:
        raise FeedError(f"no feed named {only} in {settings.feeds_file}")
    assert settings.feeds_file is not None  # load_feeds refused it otherwise
    base = settings.feeds_file.parent

    async def refresh() -> list[FeedRun]:
        store = await _started_store(settings)
        try:
            return [await refresh_feed(store, feed, base, _now) for feed in chosen]
        finally:
            await store.stop()

    runs = asyncio.run(refresh())
    state = FeedsState.load(settings.data_dir / "feeds-state.json")
    for run in runs:
        state.record(run)
        print(run.summary())
    return 1 if any(run.failure for run in runs) else 0


def list_main(settings: Settings) -> int:
    """``atalaia feeds list``: the configured feeds and every kind known."""
    feeds = load_feeds(settings.feeds_file) if settings.feeds_file else []
    state = FeedsState.load(settings.data_dir / "feeds-state.json")
    for feed in feeds:
        last = state.last_success.get(feed.name)
        when = datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds") if last else "never"
        print(f"{feed.name:<20} {feed.kind:<14} last success {when}  {feed.source}")
    print("kinds:")
    for name, kind in FEED_KINDS.items():
        print(f"  {name:<14} {kind.description}")
    return 0


def run_main(settings: Settings) -> int:
    """``atalaia feeds run``: the refresh service, until SIGINT/SIGTERM."""
    from streams.logs import configure_logging

    feeds = load_feeds(settings.feeds_file)
    assert settings.feeds_file is not None
    base = settings.feeds_file.parent
    configure_logging(settings, "feeds")
    interval_s = settings.feeds_interval_hours * 3600
    state = FeedsState.load(settings.data_dir / "feeds-state.json")
    last: dict[str, FeedRun] = {}

    def runs_check() -> Check:
        failed = [run.feed for run in last.values() if run.failure]
        done = f"{len(last)} of {len(feeds)} feeds run"
        return Check(True, done + (f"; last run failed: {', '.join(failed)}" if failed else ""))

    async def main() -> None:
        readiness = Readiness("feeds")
        readiness.check("feeds", runs_check)
        async with operated(readiness, settings.metrics_host, settings.metrics_port) as stop:
            store = await _started_store(settings)
            readiness.check("lists", store.check)
            try:
                await refresh_until(stop, store)
            finally:
                await store.stop()

    async def refresh_until(stop: asyncio.Event, store: AdminState) -> None:
        next_due = {f.name: state.last_success.get(f.name, 0.0) + interval_s for f in feeds}
        while not stop.is_set():
            for feed in feeds:
                if stop.is_set() or next_due[feed.name] > time.time():
                    continue
                last[feed.name] = run = await refresh_feed(store, feed, base, _now)
                state.record(run)
                again = min(interval_s, RETRY_S) if run.failure else interval_s
                next_due[feed.name] = time.time() + again
            wait = max(1.0, min(next_due.values()) - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    asyncio.run(main())
    log.info("feeds service stopped")
    return 0
