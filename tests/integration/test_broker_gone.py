"""The broker goes away for good (a broker of each test's own, not the session's) and a
long-running process is told to stop: it stops, soon and cleanly, instead of retrying forever,
and its log holds each kind of the client's retry errors a few times, not once per retry.

Before: the worker never finished stopping (aiokafka's close killed Faust's consumer thread),
the learner exited 1 with a traceback, and each wrote ~200 error lines a second meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from streams.admin import ensure_topics
from streams.reader import read_topics
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, send_events

pytestmark = pytest.mark.integration
READY_TIMEOUT_S = 60.0


def _decided_a_warm_up(settings: Settings) -> None:
    topics = Topics(settings.topic_prefix)
    warmup = factories.gift()
    asyncio.run(send_events(settings.bootstrap_servers, topics, [warmup]))
    asyncio.run(collect(settings.bootstrap_servers, topics, {warmup.event_id}))


def _published_a_model(settings: Settings) -> None:
    async def first() -> None:
        models = Topics(settings.topic_prefix).models
        records = read_topics(settings.bootstrap_servers, [models], True, READY_TIMEOUT_S)
        async with aclosing(records):
            async for _ in records:
                return
        raise AssertionError("the learner published no model")

    asyncio.run(first())


def _answers_http(settings: Settings) -> None:
    assert wait_for_port("127.0.0.1", settings.api_port, READY_TIMEOUT_S), "api did not listen"


READY: dict[str, Callable[[Settings], None]] = {
    "worker": _decided_a_warm_up,
    "learner": _published_a_model,
    "api": _answers_http,
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
            }
        )
        asyncio.run(ensure_topics(settings))
        process = WorkerProcess(settings, tmp_path / f"{command}.log", command).start()
        try:
            READY[command](settings)
        except BaseException:
            process.stop()
            raise
    time.sleep(2)  # its fetches, sends and metadata requests now fail and wait to retry
    assert process.alive
    asked = time.monotonic()
    assert process.stop(timeout_s=30) == 0
    assert time.monotonic() - asked < 30
    log = process.log_file.read_text()
    assert "Traceback" not in log
    assert log.count("Unable connect to node") <= 4
