"""Real servers for integration tests: one Tansu broker per session, workers per test."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from atalaia.api import DecideService, build_api
from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from atalaia.supervise import WorkerProcess
from config.auth import key_digest
from config.rules import load_rules
from config.settings import Settings, load_settings
from streams.admin import ensure_topics
from tests.integration.helpers import API_KEYS


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log) as running:
        yield running


class RedisServer:
    """A throw-away redis-server on a free 127.0.0.1 port, nothing saved to disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for_port("127.0.0.1", self.port, 10):
            raise RuntimeError("redis-server did not start")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def engine_settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings with topic names and group id of this test only; its topics created."""
    unique = uuid.uuid4().hex[:10]
    settings = load_settings(
        profile="tansu-test",  # short group session: a new worker joins in ~1 s, not ~5
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
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: each call starts one more worker process; all are stopped at the end.

    ``node`` picks the worker's machine: its own data directory (RocksDB files cannot be
    shared by two live processes). A restart on the same node finds its local state again.
    """
    started: list[WorkerProcess] = []

    def start(node: int = 0, settings: Settings | None = None) -> WorkerProcess:
        base = settings or engine_settings
        settings = base.model_copy(update={"data_dir": tmp_path / f"node-{node}"})
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def api_settings(engine_settings: Settings, redis_server: RedisServer) -> Settings:
    """Settings of an ``atalaia api``: its own port, Redis, and one key per role."""
    keys = ",".join(f"{role}-key:{role}:{key_digest(key)}" for role, key in API_KEYS.items())
    return engine_settings.model_copy(
        update={
            "api_port": free_port(),
            "redis_url": redis_server.url,
            "api_keys": SecretStr(keys),
        }
    )


@pytest.fixture
def start_api(api_settings: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        settings = api_settings.model_copy(update={"key_store_dir": tmp_path / "keys"})
        api = WorkerProcess(settings, tmp_path / "api.log", command="api").start()
        started.append(api)
        assert wait_for_port("127.0.0.1", api_settings.api_port, 60), "api did not listen"
        return api

    yield start
    for api in started:
        api.stop()


class InProcessApi:
    """The ``atalaia api`` server (``build_api``: decision endpoint, admin API, key store) on
    its own event loop in a thread of the test process: the same routes, clients and topics
    as the process, without a process start. For tests of the HTTP surface that read no
    process-wide metrics (those are counted per process, and this one is the test's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)

    def start(self) -> InProcessApi:
        self._thread.start()
        service = DecideService(self.settings, load_rules(self.settings.rules_path))

        async def serve() -> None:
            self._runner = web.AppRunner(build_api(service), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.api_host, self.settings.api_port)
            await site.start()

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(timeout=60)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            runner = self._runner
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def start_api_in_process(
    api_settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], InProcessApi]]:
    """Factory: ``atalaia api`` served from this process (``InProcessApi``), stopped at the
    end; same settings as ``start_api``'s."""
    started: list[InProcessApi] = []

    def start() -> InProcessApi:
        settings = api_settings.model_copy(update={"key_store_dir": tmp_path / "keys"})
        api = InProcessApi(settings)
        started.append(api)
        return api.start()

    yield start
    for api in started:
        api.stop()
