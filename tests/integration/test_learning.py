"""The learner and the worker on the real broker: labels teach the model the worker scores
with, known frauds reach later decisions, a restarted learner remembers, and a challenger
is scored in shadow beside the champion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atalaia.broker import free_port
from atalaia.learning import compare_shadow
from atalaia.publish import OutRecord, publish
from atalaia.supervise import WorkerProcess
from config.rules import default_rules_path, load_rules
from config.settings import Settings
from engine.learning import event_label
from engine.model_inputs import known_fraud_feature
from schemas.models import (
    Decision,
    LoginEvent,
    ModelSnapshot,
    ShadowDecision,
    TransactionEvent,
    Verdict,
)
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import (
    CODEC,
    collect,
    read_all,
    run_atalaia,
    scrape_metrics,
    send_events,
)

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def rules_file(path: Path, version: str, extra: dict[str, str]) -> Path:
    """The shipped rules with a few values changed (the model ready after 2 labels)."""
    text = default_rules_path().read_text()
    text = text.replace('version = "', f'version = "{version}-', 1)
    ready = {
        "min_labels = 2000": "min_labels = 2",
        "min_frauds = 20": "min_frauds = 1",
        "min_labels = 300 ": "min_labels = 2 ",  # the flows' models too
        "min_frauds = 15": "min_frauds = 1",
    }
    for old, new in {**ready, **extra}.items():
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text)
    load_rules(path)
    return path


@pytest.fixture
def model_settings(engine_settings: Settings, tmp_path: Path) -> Settings:
    champion = rules_file(tmp_path / "champion.toml", "champion", {})
    challenger = rules_file(
        tmp_path / "challenger.toml",
        "challenger",
        {"[decision.transaction]\nreview_from = 30": "[decision.transaction]\nreview_from = 1"},
    )
    return engine_settings.model_copy(
        update={
            "rules_path": champion,
            "challenger_rules_path": challenger,
            "model_snapshot_seconds": 0.3,
        }
    )


@pytest.fixture
def learner_metrics_port() -> int:
    return free_port()


@pytest.fixture
def start_learner(
    model_settings: Settings, tmp_path: Path, learner_metrics_port: int
) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        settings = model_settings.model_copy(update={"data_dir": tmp_path / "learner"})
        if not started:  # the first learner serves its metrics (a restarted one starts at 0)
            settings = settings.model_copy(update={"metrics_port": learner_metrics_port})
        log = tmp_path / f"learner-{len(started)}.log"
        learner = WorkerProcess(settings, log, command="learner").start()
        started.append(learner)
        return learner

    yield start
    for learner in started:
        learner.stop()


def card_payments(prefix: str, at: datetime, count: int, terminal: str) -> list[TransactionEvent]:
    return [
        factories.transaction(
            event_id=f"{prefix}-{i}",
            occurred_at=at + timedelta(seconds=i),
            user_id=f"card-user-{i % 4}",
            tx_type="CARD_PAYMENT",
            terminal_id=terminal,
            amount_cents=5_000 + 100 * i,
            counterparty_pix_key_hash=None,
            network_flags=[],
        )
        for i in range(count)
    ]


def labels_for(
    topics: Topics, events: list[TransactionEvent], frauds: set[str], at: datetime
) -> list[OutRecord]:
    """Chargeback-style labels for ``events`` (``frauds`` among them), known at ``at``."""
    labels = [event_label(e, e.event_id in frauds, at, "chargeback") for e in events]
    return [OutRecord(topics.labels, lb.subject_id.encode(), CODEC.encode(lb)) for lb in labels]


def decided(settings: Settings, events: list[TransactionEvent]) -> dict[str, Decision]:
    topics = Topics(settings.topic_prefix)
    wanted = {e.event_id for e in events}
    out = asyncio.run(collect(settings.bootstrap_servers, topics, wanted, idle_timeout_s=60))
    return {d.event_id: d for _, d in out.decisions if d.event_id in wanted}


def snapshots(settings: Settings) -> list[ModelSnapshot]:
    topics = Topics(settings.topic_prefix)
    return asyncio.run(read_all(settings.bootstrap_servers, topics.models, ModelSnapshot))


def wait_for_snapshot(
    settings: Settings, name: str, wanted: Callable[[ModelSnapshot], bool]
) -> ModelSnapshot:
    """The latest snapshot of model ``name`` once one is ``wanted`` (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [s for s in snapshots(settings) if s.name == name and wanted(s)]
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no {name} snapshot as wanted")


def test_labels_teach_the_model_the_worker_scores_with_and_a_restart_keeps_it(
    model_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_learner: Callable[[], WorkerProcess],
    learner_metrics_port: int,
) -> None:
    settings = model_settings
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    start_worker(settings=settings)
    learner = start_learner()

    # 1. Twenty payments at two terminals; chargebacks known an hour later say two were fraud.
    first = card_payments("p1", T0, 10, "t-bad") + card_payments("p1g", T0, 10, "t-good")
    asyncio.run(send_events(bootstrap, topics, list(first)))
    before = decided(settings, first)
    assert len(before) == 20
    assert all(d.label_entities for d in before.values())  # the terminal and card keys
    frauds = {"p1-3", "p1-7"}
    asyncio.run(publish(bootstrap, labels_for(topics, first, frauds, T0 + timedelta(hours=1))))

    # 2. Later payments move event time past the labels: the learner learns them, and the
    #    frauds are known on their terminal from the labels' time on.
    second = card_payments("p2", T0 + timedelta(hours=2), 5, "t-bad")
    asyncio.run(send_events(bootstrap, topics, list(second)))
    decided(settings, second)
    learned = wait_for_snapshot(settings, "champion", lambda s: s.labels >= 20)
    assert learned.frauds == 2 and learned.known_until == T0 + timedelta(hours=1)
    metrics = scrape_metrics(learner_metrics_port)
    assert metrics["atalaia_learner_inputs_total{kind=label}"] >= 1
    assert metrics["atalaia_learner_inputs_total{kind=decision}"] >= 25
    assert metrics["atalaia_learner_snapshots_total{model=champion}"] >= 1
    assert metrics["atalaia_learner_model_labels{model=champion}"] >= 20

    # 3. Now the worker scores with that model and reads the known frauds of the terminal.
    third = card_payments("p3", T0 + timedelta(hours=3), 3, "t-bad") + card_payments(
        "p3g", T0 + timedelta(hours=3), 3, "t-good"
    )
    asyncio.run(send_events(bootstrap, topics, list(third)))
    after = decided(settings, third)
    bad, good = after["p3-0"], after["p3g-0"]
    assert bad.features[known_fraud_feature("terminal", "24h")] == 2
    assert good.features[known_fraud_feature("terminal", "24h")] == 0
    assert bad.model_version is not None and bad.model_probability is not None
    assert int(bad.model_version.rsplit(".", 1)[1]) >= int(learned.version.rsplit(".", 1)[1])
    assert any(r.code == "MODEL_FRAUD_PROBABILITY" for r in bad.reasons)
    assert bad.model_probability > good.model_probability  # t-bad's frauds taught it

    # 4. A restarted learner carries on from its checkpoint: nothing forgotten or relearned.
    assert learner.stop() == 0
    start_learner()
    fourth = card_payments("p4", T0 + timedelta(hours=4), 2, "t-good")
    asyncio.run(send_events(bootstrap, topics, list(fourth)))
    decided(settings, fourth)
    latest = wait_for_snapshot(settings, "champion", lambda s: s.events >= 33)
    assert latest.labels == 20 and latest.frauds == 2 and latest.events == 33  # each once
    assert int(latest.version.rsplit(".", 1)[1]) > int(learned.version.rsplit(".", 1)[1])


def test_logins_learn_from_their_labels_and_the_worker_scores_with_the_login_model(
    model_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_learner: Callable[[], WorkerProcess],
) -> None:
    """Logins have an online model of their own: labels of logins teach it, the learner
    publishes it as champion-login, and the worker's next login decisions carry its reason."""
    settings = model_settings
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    start_worker(settings=settings)
    start_learner()

    def logins(prefix: str, at: datetime, bot: bool) -> list[LoginEvent]:
        return [
            factories.login(
                event_id=f"{prefix}-{i}",
                user_id=f"{prefix}-user-{i}",
                occurred_at=at + timedelta(seconds=i),
                success=not bot,
                failure_reason="BAD_PASSWORD" if bot else None,
                device_fingerprint="bot-device" if bot else f"{prefix}-phone-{i}",
                network_flags=["HOSTING"] if bot else [],
            )
            for i in range(4)
        ]

    first = logins("lb", T0, bot=True) + logins("lg", T0, bot=False)
    asyncio.run(send_events(bootstrap, topics, list(first)))
    assert all(
        d.features.get("ml.flow.hour") is not None for d in decided(settings, first).values()
    )
    labelled_at = T0 + timedelta(minutes=10)
    labels = [event_label(e, e.event_id.startswith("lb"), labelled_at, "analyst") for e in first]
    records = [OutRecord(topics.labels, lb.subject_id.encode(), CODEC.encode(lb)) for lb in labels]
    asyncio.run(publish(bootstrap, records))
    later = logins("lt", T0 + timedelta(minutes=20), bot=False)[:1]  # moves event time on
    asyncio.run(send_events(bootstrap, topics, list(later)))
    decided(settings, later)
    learned = wait_for_snapshot(settings, "champion-login", lambda s: s.labels >= 8)
    assert learned.frauds == 4 and learned.version.startswith("flow-1.")

    probes = logins("pb", T0 + timedelta(minutes=30), bot=True)[:1]
    probes += logins("pg", T0 + timedelta(minutes=30), bot=False)[:1]
    asyncio.run(send_events(bootstrap, topics, list(probes)))
    after = decided(settings, probes)
    bad, good = after["pb-0"], after["pg-0"]
    assert bad.model_version is not None and bad.model_version.startswith("flow-1.")
    assert bad.model_probability is not None and good.model_probability is not None
    assert bad.model_probability > good.model_probability
    assert "MODEL_FRAUD_PROBABILITY" in [r.code for r in bad.reasons]


def test_a_challenger_is_scored_in_shadow_without_changing_decisions(
    model_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_learner: Callable[[], WorkerProcess],
) -> None:
    settings = model_settings
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    start_worker(settings=settings)
    start_learner()
    events = card_payments("s", T0, 12, "t-1")
    asyncio.run(send_events(bootstrap, topics, list(events)))
    decisions = decided(settings, events)
    asyncio.run(publish(bootstrap, labels_for(topics, events, {"s-1"}, T0 + timedelta(minutes=30))))
    shadows = asyncio.run(read_all(bootstrap, topics.shadow_decisions, ShadowDecision))
    assert {s.event_id for s in shadows} == set(decisions)
    for shadow in shadows:
        decision = decisions[shadow.event_id]
        assert shadow.champion_decision is decision.decision  # the published one, unchanged
        assert shadow.champion_version.startswith("champion-")
        assert shadow.challenger_version.startswith("challenger-")
    moved = [s for s in shadows if s.challenger_decision is not s.champion_decision]
    assert moved and all(s.challenger_decision is Verdict.REVIEW for s in moved)  # review from 1

    result = run_atalaia(settings, "shadow")
    assert result.returncode == 0, result.stderr
    assert "events: 12; same verdict:" in result.stdout
    assert "on 12 labelled events" in result.stdout
    comparison = compare_shadow(shadows, [])
    assert comparison.events == 12 and comparison.champion is None


def test_a_backtest_replays_the_archived_input_topics_under_a_candidate(
    engine_settings: Settings, tmp_path: Path
) -> None:
    settings = engine_settings
    topics = Topics(settings.topic_prefix)
    events = card_payments("b", T0, 30, "t-1")
    asyncio.run(send_events(settings.bootstrap_servers, topics, list(events)))
    labels = labels_for(topics, events, {"b-2", "b-9"}, T0 + timedelta(hours=1))
    asyncio.run(publish(settings.bootstrap_servers, labels))
    candidate = rules_file(
        tmp_path / "candidate.toml",
        "candidate",
        {"[decision.transaction]\nreview_from = 30": "[decision.transaction]\nreview_from = 1"},
    )
    day = T0.date().isoformat()
    args = ("backtest", "--config", str(candidate), "--from", day, "--to", day)
    result = run_atalaia(settings, *args, "--warmup-days", "1")
    assert result.returncode == 0, result.stderr
    assert "30 events replayed" in result.stdout
    assert "30 measured events have a label" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| cu", "| ca"))]
    assert rows[0].startswith("| current (") and rows[1].startswith("| candidate (candidate-")
    assert "why missed (frauds let through)" in result.stdout


BATCH_SOON = {
    "retrain_hours = 24": "retrain_hours = 1",
    "min_frauds = 50": "min_frauds = 2",
    "legit_sample = 0.25": "legit_sample = 1.0",
    "rounds = 300": "rounds = 20",
    "min_leaf = 20": "min_leaf = 1",
}


def test_the_learner_trains_the_batch_model_from_labels_and_the_worker_scores_with_it(
    engine_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """Labels in, a signed batch snapshot out once event time passes the next training,
    knowing only those labels; then the worker's decisions blend its probability in."""
    rules = rules_file(tmp_path / "batch.toml", "batch", BATCH_SOON)
    settings = engine_settings.model_copy(
        update={"rules_path": rules, "model_snapshot_seconds": 0.3}
    )
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.bootstrap_servers
    start_worker(settings=settings)
    learner_settings = settings.model_copy(update={"data_dir": tmp_path / "learner"})
    learner = WorkerProcess(learner_settings, tmp_path / "learner.log", command="learner")
    learner.start()
    try:
        # 1. Forty payments; the large ones at t-bad are chargebacks, all labels known an hour
        #    later.
        start = T0.replace(minute=0, second=0)
        small = card_payments("b1", start, 20, "t-good")
        large = [
            e.model_copy(update={"amount_cents": 90_000 + 1_000 * i})
            for i, e in enumerate(card_payments("b1x", start, 20, "t-bad"))
        ]
        first = small + large
        asyncio.run(send_events(bootstrap, topics, list(first)))
        assert len(decided(settings, first)) == 40
        frauds = {e.event_id for e in large}
        known_at = start + timedelta(hours=1)
        asyncio.run(publish(bootstrap, labels_for(topics, first, frauds, known_at)))

        # 2. Payments two hours later carry event time past the labels and the next full
        #    hour: the learner learns them and trains the trees on them.
        later = card_payments("b2", start + timedelta(hours=2), 3, "t-good")
        asyncio.run(send_events(bootstrap, topics, list(later)))
        decided(settings, later)
        trees = wait_for_snapshot(settings, "champion-batch", lambda s: s.labels >= 40)
        assert trees.frauds == 20 and trees.labels == 40
        assert trees.known_until == known_at  # never a label it could not know
        assert trees.version.startswith("trees-1.")
        time.sleep(2)  # the worker's follower of the models topic reads it

        # 3. The worker loads it: later decisions are scored with both models, and a
        #    payment like the frauds gets a higher probability than a small one.
        third = card_payments("b3", start + timedelta(hours=3), 2, "t-good")
        like_fraud = third[1].model_copy(update={"amount_cents": 95_000, "terminal_id": "t-bad"})
        events = [third[0], like_fraud]
        asyncio.run(send_events(bootstrap, topics, events))
        after = decided(settings, events)
        small_one, large_one = after[third[0].event_id], after[like_fraud.event_id]
        for decision in (small_one, large_one):
            assert decision.model_version is not None
            assert decision.model_version.endswith(f"+{trees.version}")
        assert large_one.model_probability is not None and small_one.model_probability is not None
        assert large_one.model_probability > small_one.model_probability
    finally:
        learner.stop()
