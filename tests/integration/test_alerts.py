"""Alerts end to end: critical list hits raise throttled alerts on the alerts topic, and a
webhook that fails at first still receives them (retried in the background)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from atalaia.broker import free_port, wait_for_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from engine.alerts import SLOW_PROCESSING
from schemas.models import Alert
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, read_all, send_events

pytestmark = pytest.mark.integration
SANCTIONED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []
    failures_left: ClassVar[int] = 2

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Webhook.failures_left > 0:
            _Webhook.failures_left -= 1
            self.send_response(500)
        else:
            _Webhook.received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _critical_hits() -> list[str]:
    """The webhook texts received, without the slow-processing alerts of a loaded machine."""
    texts = [str(body["text"]) for body in _Webhook.received]
    return [t for t in texts if SLOW_PROCESSING not in t]


def test_critical_hits_alert_once_per_user_and_reach_a_flaky_webhook(
    engine_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    webhook: str,
    tmp_path: Path,
) -> None:
    settings = engine_settings.model_copy(
        update={
            "sink_port": free_port(),
            "alert_webhooks": webhook,
            "analytics_target": str(tmp_path / "analytics"),
            "data_dir": tmp_path / "sink",
        }
    )
    topics = Topics(settings.topic_prefix)
    start_worker()
    sink = WorkerProcess(settings, tmp_path / "sink.log", "sink").start()
    try:
        assert wait_for_port("127.0.0.1", settings.sink_port, 60)
        at = datetime.now(UTC) - timedelta(minutes=1)
        payments = [
            factories.transaction(
                user_id=user,
                counterparty_pix_key_hash=None,
                counterparty_wallet=SANCTIONED,
                network_flags=[],
                occurred_at=at + timedelta(seconds=n),
            )
            for n, user in enumerate(["ana", "bia", "ana"])
        ]
        asyncio.run(send_events(settings.bootstrap_servers, topics, payments))
        asyncio.run(collect(settings.bootstrap_servers, topics, {p.event_id for p in payments}))
        deadline = time.monotonic() + 60
        while len(_critical_hits()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.sink_port}/metrics") as page:
            metrics = page.read().decode()
        assert 'atalaia_alerts_total{rule="blacklist_hit_critical"} 2.0' in metrics
    finally:
        sink.stop()
    alerts = asyncio.run(read_all(settings.bootstrap_servers, topics.alerts, Alert))
    # A decision later than slow_processing_ms (a loaded machine) alerts too: not this test's.
    alerts = [a for a in alerts if a.rule != SLOW_PROCESSING]
    assert sorted(a.subject_id or "" for a in alerts) == ["ana", "bia"]  # ana's 2nd throttled
    assert {a.rule for a in alerts} == {"blacklist_hit_critical"}
    texts = _critical_hits()
    assert len(texts) == 2 and _Webhook.failures_left == 0
    assert all(t.startswith("[CRITICAL] blacklist_hit_critical:") for t in texts)
    assert all(SANCTIONED.lower() not in t.lower() for t in texts)  # masked only
