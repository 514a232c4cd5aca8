"""The daily anchor as a service: started after its time of day it anchors yesterday at once,
restarted it does not anchor the same day twice, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import pytest
from pydantic import SecretStr
from stellar_sdk import Keypair

from atalaia.broker import free_port
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from engine.anchor import check_anchor
from schemas.codec import WireCodec
from schemas.models import AuditAnchor, AuditBatch
from streams.topics import Topics
from tests.integration.helpers import read_all

pytestmark = pytest.mark.integration


def _readiness(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return dict(json.loads(answer.read()))
    except (urllib.error.URLError, OSError):
        return {}


def _schedule_until(settings: Settings, log: Path, wanted: str) -> str:
    """Run the scheduled anchor until its readiness reports ``wanted``; its detail."""
    assert settings.metrics_port is not None
    anchor = WorkerProcess(settings, log, ["audit", "anchor", "--schedule"]).start()
    try:
        deadline = time.monotonic() + 90
        while True:
            checks = _readiness(settings.metrics_port).get("checks", {})
            detail = str(checks.get("schedule", {}).get("detail", ""))  # type: ignore[union-attr]
            if wanted in detail:
                return detail
            assert anchor.alive, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"{detail!r}\n{log.read_text()[-2000:]}"
            time.sleep(0.5)
    finally:
        assert anchor.stop() == 0, log.read_text()[-2000:]


def test_the_scheduled_anchor_anchors_yesterday_once(
    engine_settings: Settings, tmp_path: Path
) -> None:
    settings = engine_settings.model_copy(
        update={
            "stellar_secret": SecretStr(Keypair.random().secret),
            "anchor_time_utc": day_time(0, 0),  # already past: yesterday is due now
            "metrics_port": free_port(),
        }
    )
    topics = Topics(settings.topic_prefix)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    batches = [
        AuditBatch(
            batch_id=f"{chain}:0-9",
            chain=chain,
            first_sequence=0,
            last_sequence=9,
            count=10,
            root=hashlib.sha256(f"root-{chain}".encode()).hexdigest(),
            closed_at=yesterday.replace(hour=12),
        )
        for chain in (0, 1)
    ]
    codec = WireCodec()
    records = [
        OutRecord(topics.audit_batches, b.batch_id.encode(), codec.encode(b)) for b in batches
    ]
    asyncio.run(publish(settings.bootstrap_servers, records))

    day = yesterday.date().isoformat()
    first = _schedule_until(settings, tmp_path / "anchor-1.log", f"anchored {day}")
    assert "over 2 batches" in first and "next " in first
    again = _schedule_until(settings, tmp_path / "anchor-2.log", f"{day} already anchored")
    assert again.startswith("next ")

    anchors = asyncio.run(read_all(settings.bootstrap_servers, topics.audit_anchors, AuditAnchor))
    assert [a.day for a in anchors] == [day]
    assert check_anchor(anchors[0], batches) == []
    assert not anchors[0].submitted  # no Horizon configured: signed, kept for later
