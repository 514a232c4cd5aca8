"""``atalaia up``: the whole stack as local processes, the way the compose file runs it in
containers: a broker (the embedded Tansu, or any Kafka given by ``--kafka``), the workers,
the API, the auditor, the learner, the analytics sink, the feeds service (when a feeds file
is set) and the daily anchor (when a Stellar secret is set).

Each process is an ``atalaia <command>`` child with its own ports and state directory; ``up``
waits until every one answers ``/readyz``, prints where everything is, and on Ctrl-C or
SIGTERM stops them all (SIGTERM each, then the broker) and exits 0. A process that dies
stops the others, and ``up`` exits 1. Logs go to ``<data_dir>/logs/<service>.log``. With the
embedded broker (memory only) the processes' state goes to a scratch directory removed at
the end; with ``--kafka`` it is kept under ``<data_dir>/up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from atalaia.broker import BrokerError, EmbeddedBroker, free_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings

READY_TIMEOUT_S = 240.0
POLL_S = 0.5
OPTIONAL = ("api", "auditor", "learner", "sink", "feeds", "anchor")
"""Services ``--without`` may leave out (workers always run)."""


class UpError(Exception):
    """The stack could not be brought up; one line for the operator."""


@dataclass
class Service:
    name: str
    command: list[str]
    settings: Settings
    port: int
    where: str
    """What to print: the service's own endpoints."""
    process: WorkerProcess | None = None

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


def plan(
    settings: Settings,
    workers: int,
    without: Sequence[str],
    state_dir: Path,
    port: Callable[[], int] = free_port,
) -> tuple[list[Service], list[str]]:
    """The services to start (each with its ports and state directory), and notes on the
    ones left out and why."""
    notes: list[str] = []
    services: list[Service] = []

    def add(name: str, command: list[str], **changes: object) -> Service:
        metrics = port()
        update = {"metrics_port": metrics, "data_dir": state_dir / name, **changes}
        own = settings.model_copy(update=update)
        where = f"metrics/health http://127.0.0.1:{metrics}"
        service = Service(name, command, own, metrics, where)
        services.append(service)
        return service

    for n in range(1, workers + 1):
        add(f"worker-{n}", ["worker"])
    wanted = [name for name in OPTIONAL if name not in without]
    if "auditor" in wanted:
        add("auditor", ["auditor"])
    if "learner" in wanted:
        add("learner", ["learner"])
    if "sink" in wanted:
        embedded = "://" not in settings.analytics
        if embedded and importlib.util.find_spec("chdb") is None:
            notes.append("sink: off (an embedded analytics store needs atalaia[analytics])")
        else:
            sink = add("sink", ["sink"], analytics_target=settings.analytics)
            sink.port = settings.sink_port
            sink.where = f"queries, metrics, health http://127.0.0.1:{settings.sink_port}"
    if "api" in wanted:
        api = add("api", ["api"], key_store_dir=settings.key_store_path)
        api.port = settings.api_port
        base = f"http://127.0.0.1:{settings.api_port}"
        api.where = f"{base}/v1/decide/{{kind}}  {base}/api/admin/...  metrics, health {base}"
    if "feeds" in wanted:
        if settings.feeds_file is None:
            notes.append("feeds: off (set ATALAIA_FEEDS_FILE to a feeds TOML file)")
        else:
            feeds = add("feeds", ["feeds", "run"])
            feeds.settings = feeds.settings.model_copy(update={"data_dir": settings.data_dir})
    if "anchor" in wanted:
        if not settings.stellar_secret.get_secret_value():
            notes.append("anchor: off (set ATALAIA_STELLAR_SECRET to anchor daily on Stellar)")
        else:
            add("anchor", ["audit", "anchor", "--schedule"])
    return services, notes


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Stop:
    """Set by SIGINT or SIGTERM: ``up`` then stops everything it started."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum


def _stop_all(services: Sequence[Service]) -> None:
    """SIGTERM every process at once (the API and feeds first in the list), wait for each."""
    running = [s.process for s in reversed(services) if s.process is not None]
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        list(pool.map(lambda process: process.stop(), running))


@contextlib.contextmanager
def _broker(settings: Settings, kafka: str | None, logs: Path) -> Iterator[str]:
    """The bootstrap servers: ``kafka``, or an embedded broker on the configured port."""
    if kafka is not None:
        yield kafka
        return
    port = int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    try:
        broker = EmbeddedBroker(port=port, log_file=logs / "broker.log").start()
    except BrokerError as exc:
        raise UpError(
            f"{exc}: give a running Kafka with --kafka HOST:PORT, or another port in "
            "ATALAIA_BOOTSTRAP_SERVERS"
        ) from None
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@contextlib.contextmanager
def _state_dir(settings: Settings, embedded: bool) -> Iterator[Path]:
    if not embedded:
        yield settings.data_dir / "up"
        return
    from atalaia.scratch import scratch_directory

    with scratch_directory("atalaia-up-") as tmp:
        yield tmp


def up_main(
    settings: Settings,
    workers: int,
    without: Sequence[str],
    kafka: str | None,
    profile: str | None,
    ready_timeout_s: float = READY_TIMEOUT_S,
    out: TextIO = sys.stdout,
) -> int:
    stop = _Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _broker(settings, kafka, logs) as servers, _state_dir(settings, kafka is None) as state:
        chosen = "tansu" if kafka is None else (profile or "kafka")
        settings = settings.model_copy(update={"bootstrap_servers": servers, "profile": chosen})
        from streams.admin import ensure_topics

        asyncio.run(ensure_topics(settings))
        services, notes = plan(settings, workers, without, state)
        try:
            for service in services:
                log_file = logs / f"{service.name}.log"
                service.process = WorkerProcess(service.settings, log_file, service.command)
                service.process.start()
            code = _wait_ready(services, logs, stop, ready_timeout_s)
            if code is None:
                elapsed = time.monotonic() - started
                _print_where(services, notes, servers, kafka is None, logs, elapsed, out)
                code = _watch(services, logs, stop, out)
        finally:
            _stop_all(services)
    print("atalaia up: stopped", file=out, flush=True)
    return code


def _wait_ready(
    services: Sequence[Service], logs: Path, stop: _Stop, timeout_s: float
) -> int | None:
    """None once every service is ready; else the exit code (a death, a signal, too slow)."""
    pending = list(services)
    deadline = time.monotonic() + timeout_s
    while pending:
        if stop.signal is not None:
            return 0
        for service in list(pending):
            assert service.process is not None
            if not service.process.alive:
                code = service.process.exit_code
                raise UpError(
                    f"{service.name} exited ({code}) before it was ready; "
                    f"{logs / service.name}.log ends:\n{_tail(logs / f'{service.name}.log')}"
                )
            if _ready(service.ready_url):
                pending.remove(service)
        if time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise UpError(f"not ready after {timeout_s:.0f}s: {names} (see {logs})")
        time.sleep(POLL_S)
    return None


def _print_where(
    services: Sequence[Service],
    notes: Sequence[str],
    servers: str,
    embedded: bool,
    logs: Path,
    elapsed_s: float,
    out: TextIO,
) -> None:
    broker = "embedded Tansu (memory only)" if embedded else "Kafka"
    lines = [
        f"atalaia up: {len(services)} processes ready in {elapsed_s:.1f} s",
        f"  {'broker':<10} {'':>7}  {broker} on {servers}",
    ]
    for service in services:
        assert service.process is not None
        lines.append(f"  {service.name:<10} {service.process.pid:>7}  {service.where}")
    lines += [f"  {note}" for note in notes]
    lines.append(f"logs in {logs}; /readyz of each says why it is (not) ready")
    lines.append("Ctrl-C (or SIGTERM) stops everything")
    print("\n".join(lines), file=out, flush=True)


def _watch(services: Sequence[Service], logs: Path, stop: _Stop, out: TextIO) -> int:
    """Until a signal (0) or a process's death (1)."""
    while stop.signal is None:
        for service in services:
            assert service.process is not None
            if not service.process.alive:
                code = service.process.exit_code
                print(
                    f"atalaia up: {service.name} exited ({code}); stopping everything. "
                    f"{logs / service.name}.log ends:\n{_tail(logs / f'{service.name}.log')}",
                    file=out,
                    flush=True,
                )
                return 1
        time.sleep(POLL_S)
    name = signal.Signals(stop.signal).name
    print(f"atalaia up: {name}: stopping everything", file=out, flush=True)
    return 0
