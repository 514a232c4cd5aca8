"""List feeds against the real broker: a refresh adds what its source holds and removes what
it dropped, each run audited with its counts; a source that cannot be read changes nothing;
URLs are fetched; the CLI reports and exits by the outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atalaia.broker import free_port
from atalaia.feeds import FeedConfig, FeedRun, refresh_feed
from config.settings import Settings
from schemas.models import AuditRecord, ListEntry, WatchlistName
from streams.admin_state import AdminState
from streams.topics import Topics
from tests.integration.helpers import read_all, run_atalaia

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
KEY = b"integration-feed-key"


def _now() -> datetime:
    return datetime.now(UTC)


async def _refresh(settings: Settings, feeds: list[FeedConfig], base: Path) -> list[FeedRun]:
    store = AdminState(settings.bootstrap_servers, Topics(settings.topic_prefix), KEY)
    await store.start()
    try:
        return [await refresh_feed(store, feed, base, _now) for feed in feeds]
    finally:
        await store.stop()


async def _state(settings: Settings) -> AdminState:
    """What a freshly started reader of the topics sees."""
    store = AdminState(settings.bootstrap_servers, Topics(settings.topic_prefix), KEY)
    await store.start()
    await store.stop()
    return store


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``: its base URL and directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_a_refresh_follows_its_source_and_is_audited(
    engine_settings: Settings, tmp_path: Path, served: tuple[str, Path]
) -> None:
    url, www = served
    (www / "domains.txt").write_text("mailinator.com\nyopmail.com\ntrashmail.com\n")
    sdn = (DATA / "ofac_sdn_sample.xml").read_text()
    (tmp_path / "sdn.xml").write_text(sdn)
    feeds = [
        FeedConfig(name="temp-mail", kind="email-domains", source=f"{url}/domains.txt"),
        FeedConfig(name="ofac", kind="ofac-xml", source="sdn.xml"),
    ]
    first = asyncio.run(_refresh(engine_settings, feeds, tmp_path))
    assert (first[0].added, first[0].removed, first[0].failure) == (3, 0, None)
    assert first[1].added >= 1 and first[1].names_added >= 6

    (www / "domains.txt").write_text("mailinator.com\nyopmail.com\nguerrillamail.info\n")
    last_entry = sdn.rindex("<sdnEntry>")
    shorter = sdn[:last_entry] + sdn[sdn.index("</sdnEntry>", last_entry) + len("</sdnEntry>") :]
    (tmp_path / "sdn.xml").write_text(shorter)
    second = asyncio.run(_refresh(engine_settings, feeds, tmp_path))
    assert second[0].counts | {"line_errors": 0} == {
        "added": 1,
        "updated": 0,
        "removed": 1,
        "unchanged": 2,
        "kept_elsewhere": 0,
        "names_added": 0,
        "names_removed": 0,
        "line_errors": 0,
    }
    assert second[1].names_removed == 1 and second[1].names_added == 0

    state = asyncio.run(_state(engine_settings))
    active = {e.masked_value for e in state.view.entries() if e.removed_at is None}
    removed = [e for e in state.view.entries() if e.removed_at is not None]
    assert len(removed) == 1 and removed[0].removed_by == "feed:temp-mail"
    assert len([v for v in active if v.endswith((".com", ".info"))]) >= 3
    assert len([k for k in state.watchlist if k.startswith("ofac:")]) == first[1].names_added - 1

    topics = Topics(engine_settings.topic_prefix)
    audits = asyncio.run(
        read_all(engine_settings.bootstrap_servers, topics.audit_intake, AuditRecord)
    )
    runs = sorted((a for a in audits if a.action == "feed_refresh"), key=lambda a: a.timestamp)
    assert len(runs) == 4  # read from several partitions: in time order, not read order
    mail_run = next(a for a in runs[2:] if a.actor.id == "feed:temp-mail")
    assert mail_run.details.reason is not None and "added 1, updated 0, removed 1" in (
        mail_run.details.reason
    )
    changes = [a for a in audits if a.details.correlation_id == mail_run.details.correlation_id]
    assert sorted(a.action for a in changes) == [
        "blacklist_add",
        "blacklist_remove",
        "feed_refresh",
    ]
    entries = asyncio.run(read_all(engine_settings.bootstrap_servers, topics.lists, ListEntry))
    assert "trashmail" not in " ".join(e.model_dump_json() for e in entries)  # masked only


def test_a_source_that_cannot_be_read_changes_nothing(
    engine_settings: Settings, tmp_path: Path, served: tuple[str, Path]
) -> None:
    url, www = served
    listed_by_default = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"  # config/default_lists
    (www / "wallets.txt").write_text(
        f"0x1da5821544e25c636c1417ba96ade4cf6d2f9b5a\n{listed_by_default}\n"
    )
    feed = FeedConfig(name="wallets", kind="wallets", source=f"{url}/wallets.txt")
    (ok,) = asyncio.run(_refresh(engine_settings, [feed], tmp_path))
    assert (ok.added, ok.kept_elsewhere) == (1, 1)
    (www / "wallets.txt").unlink()
    (gone,) = asyncio.run(_refresh(engine_settings, [feed], tmp_path))
    assert gone.failure is not None and "404" in gone.failure and gone.removed == 0
    (www / "wallets.txt").write_text("not a wallet\n")
    (garbage,) = asyncio.run(_refresh(engine_settings, [feed], tmp_path))
    assert garbage.failure == "no entry could be read (1 lines refused)"
    state = asyncio.run(_state(engine_settings))
    assert [e.removed_at for e in state.view.entries() if e.created_by == "feed:wallets"] == [None]
    topics = Topics(engine_settings.topic_prefix)
    audits = asyncio.run(
        read_all(engine_settings.bootstrap_servers, topics.audit_intake, AuditRecord)
    )
    runs = sorted((a for a in audits if a.action.startswith("feed_")), key=lambda a: a.timestamp)
    assert [a.action for a in runs] == [
        "feed_refresh",
        "feed_refresh_failed",
        "feed_refresh_failed",
    ]


def test_the_cli_refreshes_and_exits_by_the_outcome(
    engine_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "domains.txt").write_text("mailinator.com\n")
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text(
        '[[feeds]]\nname = "mail"\nkind = "email-domains"\nsource = "domains.txt"\n'
        '[[feeds]]\nname = "lost"\nkind = "wallets"\nsource = "nowhere.txt"\n'
    )
    settings = engine_settings.model_copy(update={"feeds_file": feeds_file})
    done = run_atalaia(settings, "feeds", "refresh", "--feed", "mail")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mail: added 1"
    failed = run_atalaia(settings, "feeds", "refresh")
    assert failed.returncode == 1
    assert "lost: FAILED, nothing changed (cannot read" in failed.stdout
    listed = run_atalaia(settings, "feeds", "list")
    assert listed.returncode == 0 and "mail                 email-domains" in listed.stdout
    missing = run_atalaia(
        engine_settings.model_copy(update={"feeds_file": tmp_path / "none.toml"}), "feeds", "run"
    )
    assert missing.returncode == 2 and "feeds file not found" in missing.stderr
    names = asyncio.run(
        read_all(settings.bootstrap_servers, Topics(settings.topic_prefix).watchlist, WatchlistName)
    )
    assert names == []
