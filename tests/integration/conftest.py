"""Real servers for integration tests: one Tansu broker per session, workers per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atalaia.broker import EmbeddedBroker
from atalaia.supervise import WorkerProcess
from config.settings import Settings, load_settings
from streams.admin import ensure_topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log) as running:
        yield running


@pytest.fixture
def engine_settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings with topic names and group id of this test only; its topics created."""
    unique = uuid.uuid4().hex[:10]
    settings = load_settings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"t-{unique}",
        app_id=f"atalaia-test-{unique}",
        partitions=3,
        data_dir=tmp_path / "data",
    )
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture
def start_worker(
    engine_settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    """Factory: each call starts one more worker process; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(engine_settings, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
