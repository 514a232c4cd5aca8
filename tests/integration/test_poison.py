"""10,000 hostile and malformed records among valid traffic, at a real worker on the real
broker: every valid event decided, every hostile record dead-lettered with its reason, no
agent crash (``tests/hostile.py`` makes the records, ``fuzzing.py`` sends and counts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from atalaia.broker import free_port
from atalaia.supervise import WorkerProcess
from config.settings import Settings
from streams.topics import Topics
from tests.hostile import CATEGORIES, VALIDATED
from tests.integration.fuzzing import CRASH_LINE, collect_outcome, send_mixed, summary
from tests.integration.helpers import scrape_metrics

pytestmark = pytest.mark.integration

HOSTILE, VALID = 10_000, 2_000


def test_hostile_records_are_dead_lettered_and_every_valid_event_is_decided(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = engine_settings.model_copy(update={"metrics_port": free_port()})
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    worker = start_worker(settings=settings)

    sent = asyncio.run(send_mixed(bootstrap, topics, HOSTILE, VALID))
    outcome = asyncio.run(collect_outcome(bootstrap, topics, sent, idle_timeout_s=60))
    log = worker.log_file.read_text(errors="replace")
    counts = summary(sent, outcome, log)
    print(counts)  # the harness's numbers, for whoever runs it with -s

    assert worker.alive
    assert CRASH_LINE not in log
    assert {h.category for h in sent.hostile.values()} == set(CATEGORIES)
    assert counts["valid_decided"] == VALID
    assert counts["dead_lettered"] == HOSTILE
    assert counts["other_dead_letters"] == 0  # no valid event among them
    for where, hostile in sent.hostile.items():
        letter = outcome.letters[where]
        assert letter.error_class in hostile.refused_as, (hostile.category, letter.error_class)
        assert letter.error_message
        assert letter.original_value == hostile.value
    # Counted once validated: JSON on the re-route topic is refused before (it takes Avro).
    leaked = [
        h for h in sent.hostile.values() if h.category == "raw_pii_in_hash" and h.kind != VALIDATED
    ]
    metrics = scrape_metrics(settings.metrics_port)  # type: ignore[arg-type]
    counted = sum(v for k, v in metrics.items() if k.startswith("atalaia_raw_pii_in_hash_total"))
    assert counted == len(leaked)
