"""The ClickHouse sink on the real broker and chDB: decisions and events arrive, the dashboard
views give the right numbers for a known input, re-deliveries and a killed sink change no
total, and ``atalaia sql`` answers while the sink runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from atalaia.admin_cli import API_KEY_ENV
from atalaia.analytics import run_query
from atalaia.broker import free_port, wait_for_port
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.auth import key_digest
from config.settings import Settings
from schemas.codec import WireCodec
from schemas.models import TransactionEvent, Verdict
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import API_KEYS, collect, run_atalaia, send_events

pytestmark = pytest.mark.integration
CODEC = WireCodec()
SANCTIONED = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"  # a shipped default, CRITICAL


@pytest.fixture
def sink_settings(
    engine_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A sink's settings; its query endpoint takes the analyst key, which ``atalaia sql``
    and ``run_query`` read from the environment."""
    monkeypatch.setenv(API_KEY_ENV, API_KEYS["analyst"])
    return engine_settings.model_copy(
        update={
            "sink_port": free_port(),
            "analytics_target": str(tmp_path / "analytics"),
            "sink_batch_ms": 200,
            "api_keys": SecretStr(f"analyst-key:analyst:{key_digest(API_KEYS['analyst'])}"),
        }
    )


@pytest.fixture
def start_sink(sink_settings: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        settings = sink_settings.model_copy(update={"data_dir": tmp_path / "sink"})
        sink = WorkerProcess(settings, tmp_path / f"sink-{len(started)}.log", "sink").start()
        started.append(sink)
        assert wait_for_port("127.0.0.1", settings.sink_port, 60), "sink did not listen"
        return sink

    yield start
    for sink in started:
        sink.stop()


def _transactions(prefix: str, count: int, blocked: int) -> list[TransactionEvent]:
    at = datetime.now(UTC) - timedelta(minutes=30)
    return [
        factories.transaction(
            event_id=f"{prefix}-{n}",
            user_id=f"{prefix}-u{n}",
            amount_cents=10_000 + n,
            network_flags=[],
            counterparty_pix_key_hash=None if n < blocked else factories.sha("pix"),
            counterparty_wallet=SANCTIONED if n < blocked else None,
            occurred_at=at + timedelta(seconds=n),
        )
        for n in range(count)
    ]


def _scalar(settings: Settings, query: str) -> Any:
    _, rows = run_query(settings, query)
    return rows[0][0]


def _wait_rows(settings: Settings, table: str, expected: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _scalar(settings, f"SELECT count() FROM {table} FINAL") >= expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{table} did not reach {expected} rows")


def test_decisions_reach_the_store_and_the_views_count_right_through_a_crash(
    sink_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_sink: Callable[[], WorkerProcess],
) -> None:
    settings = sink_settings
    topics = Topics(settings.topic_prefix)
    start_worker()
    sink = start_sink()
    first = _transactions("a", 20, blocked=3)
    asyncio.run(send_events(settings.bootstrap_servers, topics, first))
    out = asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in first}))
    decisions = {d.event_id: d for _, d in out.decisions}
    _wait_rows(settings, "decisions", len(first))

    mix = Counter(d.decision.value for d in decisions.values())
    _, rows = run_query(settings, "SELECT decision, decisions FROM decision_mix")
    assert {r[0]: r[1] for r in rows} == dict(mix)
    blocked_amount = sum(
        e.amount_cents for e in first if decisions[e.event_id].decision is Verdict.BLOCK
    )
    assert mix["BLOCK"] == 3
    assert _scalar(settings, "SELECT sum(amount_blocked_cents) FROM amount_blocked_daily") == (
        blocked_amount
    )
    _, reasons = run_query(settings, "SELECT reason, decisions FROM top_reasons")
    assert ("BLACKLIST_LIST_HIT", 3) in [tuple(r) for r in reasons]

    # Re-delivered decisions, and a sink killed mid-stream then restarted: totals stay exact.
    again = [
        OutRecord(topics.decisions, d.subject_id.encode(), CODEC.encode(d))
        for d in decisions.values()
    ]
    asyncio.run(publish(settings.bootstrap_servers, again))
    sink.kill()
    second = _transactions("b", 15, blocked=1)
    asyncio.run(send_events(settings.bootstrap_servers, topics, second))
    asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in second}))
    start_sink()
    _wait_rows(settings, "decisions", len(first) + len(second))
    time.sleep(1)
    assert _scalar(settings, "SELECT count() FROM decisions FINAL") == len(first) + len(second)
    assert _scalar(settings, "SELECT sum(decisions) FROM decision_mix") == len(first) + len(second)
    assert _scalar(settings, "SELECT count() FROM events FINAL") == len(first) + len(second)
    assert _scalar(settings, "SELECT count() FROM decisions") >= len(first) * 2  # dups stored...
    # ...and collapsed by id in every view.


def test_sql_answers_with_a_table_and_refuses_writes(
    sink_settings: Settings, start_sink: Callable[[], WorkerProcess]
) -> None:
    start_sink()

    def sql(query: str) -> subprocess.CompletedProcess[str]:
        return run_atalaia(sink_settings, "sql", query)

    shown = sql("SELECT 41 + 1 AS answer")
    assert shown.returncode == 0 and "answer" in shown.stdout and "42" in shown.stdout
    refused = sql("DROP TABLE decisions")
    assert refused.returncode == 1 and "readonly" in refused.stderr.lower()
    assert "Traceback" not in refused.stderr
    assert sql("SELECT count() FROM decisions").returncode == 0  # still there


def test_sql_on_a_store_another_process_holds_says_so_in_one_line(
    sink_settings: Settings,
) -> None:
    """A sink that has opened the store but does not answer yet (starting) holds chDB's
    one-process lock: ``atalaia sql`` must say that, not chDB's engine error."""
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from sinks.clickhouse import connect; "
            f"store = connect({sink_settings.analytics!r}); store.command('SELECT 1'); "
            "print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        refused = run_atalaia(sink_settings, "sql", "SELECT 1")
        holder.communicate(timeout=30)  # closes its stdin: it exits and frees the store
    assert refused.returncode == 1
    assert "open in another process" in refused.stderr
    assert f"127.0.0.1:{sink_settings.sink_port}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_atalaia(sink_settings, "sql", "SELECT 1").returncode == 0  # free again


def _set_immutable(root: Path, immutable: bool) -> None:
    """Make the store's directories unwritable, even for root (chattr +i), or writable again:
    the store is down for writes, as a full or failed disk would make it."""
    directories = [str(p) for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]
    flag = "+i" if immutable else "-i"
    subprocess.run(["chattr", flag, str(root), *directories], check=True)


def test_a_store_outage_loses_nothing_and_duplicates_nothing(
    sink_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_sink: Callable[[], WorkerProcess],
) -> None:
    settings = sink_settings
    topics = Topics(settings.topic_prefix)
    store = Path(settings.analytics) / "store"
    start_worker()
    sink = start_sink()
    before = _transactions("c", 10, blocked=0)
    asyncio.run(send_events(settings.bootstrap_servers, topics, before))
    asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in before}))
    _wait_rows(settings, "decisions", len(before))
    _set_immutable(store, True)
    try:
        during = _transactions("d", 12, blocked=2)
        asyncio.run(send_events(settings.bootstrap_servers, topics, during))
        asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in during}))
        time.sleep(3)  # the sink keeps failing and retrying meanwhile
        assert sink.alive
        assert _scalar(settings, "SELECT count() FROM decisions FINAL") == len(before)
    finally:
        _set_immutable(store, False)
    _wait_rows(settings, "decisions", len(before) + len(during))
    time.sleep(1)
    assert _scalar(settings, "SELECT count() FROM decisions FINAL") == len(before) + len(during)
    assert _scalar(settings, "SELECT count() FROM events FINAL") == len(before) + len(during)
    assert _scalar(settings, "SELECT sum(decisions) FROM decision_mix") == len(before) + len(during)


def _post_sql(settings: Settings, body: bytes, key: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.sink_port}/sql", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _publish_decisions(settings: Settings, prefix: str, count: int) -> None:
    topics = Topics(settings.topic_prefix)
    events = _transactions(prefix, count, blocked=0)
    at = datetime.now(UTC)
    records = [
        OutRecord(
            topics.decisions, e.user_id.encode(), CODEC.encode(factories.decision_of(e, o, at))
        )
        for e, o in zip(events, factories.run_all(events), strict=True)
    ]
    asyncio.run(publish(settings.bootstrap_servers, records))


HOSTILE_QUERIES = [
    "DROP TABLE decisions",
    "TRUNCATE TABLE decisions",
    "INSERT INTO decisions (event_id) VALUES ('x')",
    "ALTER TABLE decisions DELETE WHERE 1",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "SET readonly = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 SETTINGS max_execution_time = 0",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
    "SYSTEM SHUTDOWN",
    "SELECT throwIf(1)",
    "SELECT",
]


def test_whatever_an_analyst_types_the_sink_keeps_inserting(
    sink_settings: Settings, start_sink: Callable[[], WorkerProcess]
) -> None:
    settings = sink_settings
    sink = start_sink()
    _publish_decisions(settings, "before", 10)
    _wait_rows(settings, "decisions", 10)
    analyst = API_KEYS["analyst"]
    select = json.dumps({"sql": "SELECT 1"}).encode()

    assert _post_sql(settings, select, None)[0] == 401
    assert _post_sql(settings, select, "not-a-key")[0] == 401
    for body in (b"nope", b"[]", b'{"sql": 1}', b'{"sql": ""}', b"[" * 100_000):
        assert _post_sql(settings, body, analyst)[0] == 400, body[:20]
    for query in HOSTILE_QUERIES:
        status, answer = _post_sql(settings, json.dumps({"sql": query}).encode(), analyst)
        assert status == 400 and answer["error"], query
    # Allowed read-only, and harmless: stopping queries (an insert is retried), nothing.
    for harmless in ("KILL QUERY WHERE 1 SYNC", "\x00"):
        assert _post_sql(settings, json.dumps({"sql": harmless}).encode(), analyst)[0] == 200
    assert _post_sql(settings, select, analyst) == (200, {"columns": ["1"], "rows": [[1]]})

    _publish_decisions(settings, "after", 10)
    _wait_rows(settings, "decisions", 20)  # still inserting
    assert sink.alive


def test_sigterm_stops_the_sink_within_a_second_even_during_a_long_query(
    sink_settings: Settings, start_sink: Callable[[], WorkerProcess]
) -> None:
    idle = start_sink()
    time.sleep(2)  # past start-up: the group joined, the query port open
    started = time.monotonic()
    assert idle.stop() is not None
    assert time.monotonic() - started < 1.0

    busy = start_sink()
    long_query = json.dumps({"sql": "SELECT count() FROM numbers(1e12) WHERE number % 7 = 1"})
    dropped: list[str] = []

    def ask() -> None:
        try:
            _post_sql(sink_settings, long_query.encode(), API_KEYS["analyst"])
        except OSError as error:  # the sink stopped mid-answer: the connection drops
            dropped.append(type(error).__name__)

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(2)
    assert asking.is_alive()  # the query runs (it would for up to 30 s)
    started = time.monotonic()
    busy.stop()
    stopped_in = time.monotonic() - started
    asking.join(timeout=10)
    assert stopped_in < 1.0
    assert dropped
