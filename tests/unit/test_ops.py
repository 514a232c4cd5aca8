"""Health and readiness: alive while the loop turns, ready when every check passes, served
over HTTP on the address asked (a real socket on 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from atalaia.broker import free_port
from streams.ops import STALL_S, Check, Readiness, answer, serve_ops


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_once_every_check_passes_and_alive_while_the_loop_refreshes() -> None:
    clock = _Clock()
    readiness = Readiness("worker", clock)
    views = {"loaded": False}
    readiness.check("views", lambda: Check(views["loaded"], "lists"))
    readiness.check("model", lambda: Check(True, "champion online-3.1"))
    assert readiness.alive()[0]  # starting: no refresh yet
    assert not readiness.ready()[0]
    readiness.refresh()
    ready, body = readiness.ready()
    assert not ready and body["checks"]["views"] == {"ok": False, "detail": "lists"}
    views["loaded"] = True
    readiness.refresh()
    assert readiness.ready() == (
        True,
        {
            "service": "worker",
            "version": body["version"],
            "status": "ready",
            "checks": {
                "views": {"ok": True, "detail": "lists"},
                "model": {"ok": True, "detail": "champion online-3.1"},
            },
        },
    )
    clock.now += STALL_S + 1  # the loop stopped refreshing
    assert readiness.alive() == (False, readiness.alive()[1])
    assert "stalled" in readiness.alive()[1]["status"]
    assert not readiness.ready()[0]


def test_a_probe_that_raises_fails_its_check_with_the_reason() -> None:
    readiness = Readiness("api")
    readiness.check("broken", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    readiness.refresh()
    ready, body = readiness.ready()
    assert not ready and body["checks"]["broken"]["detail"].startswith("ZeroDivisionError")


def test_answers_metrics_health_readiness_and_not_found() -> None:
    readiness = Readiness("sink")
    readiness.check("store", lambda: Check(True, "chDB"))
    readiness.refresh()
    assert answer("/readyz", readiness)[0] == 200
    assert answer("/healthz", readiness)[0] == 200
    status, content_type, body = answer("/metrics", readiness)
    assert status == 200 and content_type.startswith("text/plain")
    assert b'atalaia_ready{service="sink"} 1.0' in body
    assert answer("/nope", readiness)[0] == 404


def test_served_over_http_on_the_address_asked() -> None:
    readiness = Readiness("learner")
    readiness.check("model", lambda: Check(False, "publishing the first snapshot"))
    readiness.refresh()
    port = free_port()
    server = serve_ops("127.0.0.1", port, readiness)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as alive:
            assert json.loads(alive.read())["status"] == "alive"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
            raise AssertionError("not ready should answer 503")
        except urllib.error.HTTPError as refused:
            assert refused.code == 503
            assert json.loads(refused.read())["checks"]["model"]["ok"] is False
    finally:
        server.shutdown()
        server.server_close()
