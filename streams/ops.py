"""What an operator (or an orchestrator) asks a running process: ``/healthz`` (alive: its
event loop still turns), ``/readyz`` (ready: each of its checks passes, e.g. partitions
assigned, views caught up, model loaded) and ``/metrics`` (Prometheus text).

Checks are evaluated on the process's event loop (``Readiness.refresh``, every second from a
task of the process), never from the HTTP thread: they read state that only the loop may
touch. The answer is JSON: ``{"service", "version", "status", "checks": {name: {"ok",
"detail"}}}``, with 200 when alive/ready and 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import READY

STALL_S = 60.0
"""A loop that has not refreshed its checks for this long counts as stuck (``/healthz`` 503)."""
REFRESH_S = 1.0


def atalaia_version() -> str:
    try:
        return version("atalaia")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


Probe = Callable[[], Check]


class Readiness:
    """The checks of one process and their last results."""

    def __init__(self, service: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.clock = clock
        self._probes: dict[str, Probe] = {}
        self._results: dict[str, Check] = {}
        self._last_refresh: float | None = None
        self._started = clock()

    def check(self, name: str, probe: Probe) -> None:
        """Add a check; ``probe`` runs on the event loop at each refresh."""
        self._probes[name] = probe
        self._results[name] = Check(False, "not checked yet")

    def refresh(self) -> None:
        """Run every probe (on the event loop); a probe that raises fails with the reason."""
        results = {}
        for name, probe in self._probes.items():
            try:
                results[name] = probe()
            except Exception as exc:  # a probe must never take the process down
                results[name] = Check(False, f"{type(exc).__name__}: {exc}"[:200])
        self._results = results  # one assignment: the HTTP thread sees old or new, whole
        self._last_refresh = self.clock()
        READY.labels(self.service).set(int(all(c.ok for c in results.values())))

    def alive(self) -> tuple[bool, dict[str, Any]]:
        last = self._last_refresh
        if last is None:
            age = self.clock() - self._started
            return age < STALL_S * 5, self._body("starting", {})
        stalled = self.clock() - last
        if stalled > STALL_S:
            return False, self._body(f"event loop stalled for {stalled:.0f}s", {})
        return True, self._body("alive", {})

    def ready(self) -> tuple[bool, dict[str, Any]]:
        alive, body = self.alive()
        results = self._results
        ok = alive and self._last_refresh is not None and all(c.ok for c in results.values())
        checks = {name: {"ok": c.ok, "detail": c.detail} for name, c in results.items()}
        return ok, self._body("ready" if ok else "not ready", checks) if alive else body

    def _body(self, status: str, checks: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service": self.service,
            "version": atalaia_version(),
            "status": status,
        }
        if checks:
            body["checks"] = checks
        return body


async def refresh_forever(readiness: Readiness, interval_s: float = REFRESH_S) -> None:
    """Refresh the checks every ``interval_s`` on the running loop, until cancelled."""
    while True:
        readiness.refresh()
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def operated(
    readiness: Readiness, host: str, port: int | None
) -> AsyncIterator[asyncio.Event]:
    """A long-running process that is not a Faust worker (the learner, the feeds and anchor
    services): its checks served on ``host:port`` (when a port is set) and refreshed on its
    loop; the event it yields is set by SIGINT or SIGTERM, its cue to stop."""
    if port is not None:
        serve_ops(host, port, readiness)
    refreshing = asyncio.create_task(refresh_forever(readiness))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        refreshing.cancel()


def answer(path: str, readiness: Readiness) -> tuple[int, str, bytes]:
    """Status, content type and body for a GET of ``path``."""
    if path == "/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest()
    if path in ("/healthz", "/readyz"):
        ok, body = readiness.alive() if path == "/healthz" else readiness.ready()
        return (200 if ok else 503), "application/json", json.dumps(body).encode()
    return 404, "application/json", b'{"error": "NotFound"}'


class _Handler(BaseHTTPRequestHandler):
    readiness: Readiness

    def do_GET(self) -> None:
        status, content_type, body = answer(self.path.split("?", 1)[0], self.readiness)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds are not worth a log line."""


def serve_ops(host: str, port: int, readiness: Readiness) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon
    thread (it answers even while the event loop is busy, which ``/healthz`` then reports)."""
    handler = type("OpsHandler", (_Handler,), {"readiness": readiness})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ops-http", daemon=True).start()
    return server


def aiohttp_routes(readiness: Readiness) -> list[Any]:
    """The same three endpoints as aiohttp routes, for a process with its own HTTP server
    (the API, the sink): they run on its loop, so the checks are refreshed per request."""
    from aiohttp import web

    def route(path: str) -> Any:
        async def handle(_request: web.Request) -> web.Response:
            if path != "/metrics":
                readiness.refresh()
            status, content_type, body = answer(path, readiness)
            return web.Response(status=status, body=body, headers={"Content-Type": content_type})

        return web.get(path, handle)

    return [route("/metrics"), route("/healthz"), route("/readyz")]
