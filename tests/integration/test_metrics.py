"""The worker's Prometheus endpoint, scraped and parsed after a known input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from atalaia.broker import free_port, wait_for_port
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect, scrape_metrics, send_events

pytestmark = pytest.mark.integration


def test_metrics_count_what_the_worker_did(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    port = free_port()
    settings = engine_settings.model_copy(update={"metrics_port": port})
    topics = Topics(settings.topic_prefix)
    start_worker(settings=settings)
    assert wait_for_port("127.0.0.1", port, 60), "no metrics endpoint"
    at = datetime.now(UTC) - timedelta(minutes=5)
    events = [
        factories.transaction(user_id=f"m{n}", network_flags=[], occurred_at=at) for n in range(10)
    ]
    asyncio.run(send_events(settings.bootstrap_servers, topics, events))
    bad = OutRecord(topics.transactions, None, b"not json")
    asyncio.run(publish(settings.bootstrap_servers, [bad]))
    asyncio.run(collect(settings.bootstrap_servers, topics, {e.event_id for e in events}))
    time.sleep(6)  # one lag measurement
    values = scrape_metrics(port)
    assert values["atalaia_events_in_total{kind=transaction}"] == 10
    decided = sum(v for k, v in values.items() if k.startswith("atalaia_decisions_total{"))
    assert decided == 10
    assert values["atalaia_decision_latency_seconds_count{}"] == 10
    assert values["atalaia_dead_letters_total{error=MalformedPayload}"] == 1
    assert values[f"atalaia_consumer_lag{{topic={topics.transactions}}}"] == 0
    assert not any("m1" in key for key in values)  # no ids in labels
