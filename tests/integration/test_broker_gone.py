"""Outages around a process's reads.

The broker goes away for good (a broker of each test's own, not the session's) and a
long-running process (worker, learner, API, sink, auditor) is told to stop: it stops, soon
and cleanly, instead of retrying forever, and its log holds each kind of the client's retry
errors a few times, not once per retry.

Before: the worker never finished stopping (aiokafka's close killed Faust's consumer thread),
the learner exited 1 with a traceback, the API left a producer unclosed, and each wrote ~200
error lines a second meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.demo import await_first_model, await_worker
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from schemas.codec import WireCodec
from schemas.models import FraudBlock, SubjectType
from streams.admin import ensure_topics
from streams.topics import Topics
from streams.views import follow_into

pytestmark = pytest.mark.integration
READY_TIMEOUT_S = 60.0


def _decided_a_warm_up(settings: Settings, _log: Path) -> None:
    topics = Topics(settings.topic_prefix)
    asyncio.run(await_worker(settings.bootstrap_servers, WireCodec(), topics, time.monotonic()))


def _published_a_model(settings: Settings, _log: Path) -> None:
    asyncio.run(await_first_model(settings.bootstrap_servers, Topics(settings.topic_prefix)))


def _answers_http(settings: Settings, _log: Path) -> None:
    assert wait_for_port("127.0.0.1", settings.api_port, READY_TIMEOUT_S), "api did not listen"


def _serves_queries(settings: Settings, _log: Path) -> None:
    assert wait_for_port("127.0.0.1", settings.sink_port, READY_TIMEOUT_S), "sink did not listen"


def _faust_ready(_settings: Settings, log: Path) -> None:
    """The auditor serves nothing to ask: its Faust worker says when it has started."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "[^Worker]: Ready" not in log.read_text():
        assert time.monotonic() < deadline, "the worker did not get ready"
        time.sleep(0.2)


READY: dict[str, Callable[[Settings, Path], None]] = {
    "worker": _decided_a_warm_up,
    "learner": _published_a_model,
    "api": _answers_http,
    "sink": _serves_queries,
    "auditor": _faust_ready,
}


@pytest.mark.parametrize("command", sorted(READY))
def test_a_process_whose_broker_is_gone_still_stops_cleanly_on_sigterm(
    command: str, engine_settings: Settings, tmp_path: Path
) -> None:
    with EmbeddedBroker(log_file=tmp_path / "own-broker.log") as own:
        settings = engine_settings.model_copy(
            update={
                "bootstrap_servers": own.bootstrap_servers,
                "data_dir": tmp_path / command,
                "api_port": free_port(),
                "sink_port": free_port(),
                "analytics_target": str(tmp_path / "analytics"),
                "stop_grace_s": 25.0,  # past it: exit 1 and the threads' stacks in the log
            }
        )
        asyncio.run(ensure_topics(settings))
        process = WorkerProcess(settings, tmp_path / f"{command}.log", command).start()
        try:
            READY[command](settings, process.log_file)
        except BaseException:
            process.stop()
            raise
    time.sleep(2)  # its fetches, sends and metadata requests now fail and wait to retry
    assert process.alive
    asked = time.monotonic()
    code = process.stop(timeout_s=30)
    log = process.log_file.read_text()
    assert code == 0, log[-6000:]
    assert time.monotonic() - asked < 30
    assert "Traceback" not in log
    assert "Unclosed" not in log  # every client it started was stopped
    assert log.count("Unable connect to node") <= 4


def test_a_view_that_starts_while_the_broker_is_away_follows_it_once_it_is_back(
    tmp_path: Path,
) -> None:
    """A follower whose read starts during an outage (nothing listens yet) tries again until
    the broker is back, then applies what is published: it used to end at the first
    failure, leaving a view that never changed again."""
    port = free_port()
    codec = WireCodec()
    block = FraudBlock(
        entity_type=SubjectType.USER,
        entity_id="u-late",
        reason="R",
        event_id="e-late",
        created_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    applied: list[FraudBlock] = []

    async def scenario() -> None:
        loaded = asyncio.Event()
        bootstrap = f"127.0.0.1:{port}"
        follower = asyncio.create_task(
            follow_into(bootstrap, "blocks", FraudBlock, applied.append, loaded.set)
        )
        await asyncio.sleep(2.5)  # its reads fail: nothing listens on the port
        assert not follower.done()
        with EmbeddedBroker(port=port, log_file=tmp_path / "late-broker.log"):
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            await admin.create_topics([NewTopic("blocks", num_partitions=1, replication_factor=1)])
            await admin.close()
            await publish(bootstrap, [OutRecord("blocks", b"u-late", codec.encode(block))])
            deadline = time.monotonic() + 30
            while not applied and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        assert loaded.is_set()

    asyncio.run(scenario())
    assert applied == [block]
