"""Online learning: inputs, label timing, snapshots, known frauds, and the model's reasons."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from config.rules import ModelRules, load_rules
from engine.decide import decide_event
from engine.learning import (
    KnownFrauds,
    Learner,
    LoadedModel,
    ModelError,
    ModelShelf,
    OnlineModel,
    PendingLabel,
    PendingLabels,
    open_model,
    seal_model,
    utc_from_ms,
)
from engine.model_inputs import (
    ModelScore,
    amount_bands,
    anomaly_points,
    is_model_scored,
    known_fraud_feature,
    model_input_names,
    model_input_values,
    model_inputs,
    probability_points,
)
from engine.replay import Replay
from engine.velocity import VelocityState
from schemas.models import KnownFraud, Label, SubjectType
from streams.views import default_list_view
from tests import factories

RULES = load_rules()
DAY_MS = 86_400_000


def small_model(**changes: object) -> ModelRules:
    return RULES.model.model_copy(update={"min_labels": 2, "min_frauds": 1, **changes})


def fraud(event_id: str, occurred_ms: int, labelled_ms: int) -> KnownFraud:
    return KnownFraud(
        event_id=event_id,
        occurred_at=utc_from_ms(occurred_ms),
        labelled_at=utc_from_ms(labelled_ms),
    )


@pytest.mark.parametrize(
    ("amount", "band"),
    [(0.0, 0), (0.5, 0), (1.0, 0), (1.18, 0), (1.19, 1), (2.0, 4), (230.0, 31), (1e9, 47)],
)
def test_an_amount_falls_in_exactly_one_band_of_the_log_scale(amount: float, band: int) -> None:
    bands = amount_bands(amount, 4, 12)
    assert len(bands) == 48 and [k for k, on in enumerate(bands) if on] == [band]
    assert set(bands) == {0.0, 1.0}
    inputs = model_inputs({"ml.amount_cents": round(amount * 100)}, RULES.model)
    assert [inputs[f"amount_band_{k}"] for k in range(48)] == bands


def test_no_bands_when_none_are_configured() -> None:
    assert amount_bands(500.0, 4, 0) == []
    rules = RULES.model.model_copy(update={"amount_band_octaves": 1, "amount_bands_per_octave": 0})
    assert not any(name.startswith("amount_band") for name in model_input_names(rules))


def test_model_inputs_come_from_the_decision_features_alone() -> None:
    features = {
        "ml.amount_cents": 50_000,
        "ml.hour": 3,
        "ml.weekend": 1,
        "tx.count.30d": 4,
        "tx.amount_cents.30d": 40_000,
        known_fraud_feature("terminal", "7d"): 2,
        "list.block.email_domain.LOW.DEFAULT.x": 1,
    }
    inputs = model_inputs(features, RULES.model)
    assert inputs["night"] == 1.0 and inputs["weekend"] == 1.0
    assert inputs["amount_to_avg_30d"] == pytest.approx(5.0)  # R$ 500 vs an average of R$ 100
    assert inputs["terminal_known_frauds_7d_log"] > 0
    assert inputs["list_block_hits"] == 1.0
    assert inputs["first_transaction"] == 1.0  # no seconds_since_previous: no history
    assert model_inputs(features, RULES.model) == inputs  # the same numbers every time
    names = model_input_names(RULES.model)
    assert len(set(names)) == len(names) == 71  # 3 + 48 bands + 3 x 3 user + 6 known + 5
    assert list(inputs) == list(names)
    assert list(inputs.values()) == model_input_values(features, RULES.model)


def test_a_transaction_decision_carries_the_model_features_and_score() -> None:
    event = factories.transaction()
    model = OnlineModel(small_model())
    loaded = LoadedModel("online-1.7", 0, model)
    outcome = decide_event(VelocityState(), event, RULES, model=loaded)
    assert is_model_scored(outcome.assessment.features)
    assert outcome.model_version == "online-1.7"
    assert outcome.model_score is not None
    gift = decide_event(VelocityState(), factories.gift(), RULES)  # its flow's model: none
    assert gift.model_score is None and not is_model_scored(gift.assessment.features)


def test_pending_labels_wait_for_event_time() -> None:
    pending = PendingLabels()
    pending.add(PendingLabel(300, "b", True))
    pending.add(PendingLabel(100, "a", False))
    assert [p.event_id for p in pending.release(99)] == []
    assert [p.event_id for p in pending.release(300)] == ["a", "b"]
    assert len(pending) == 0


def test_the_learner_learns_a_label_only_once_event_time_reaches_it() -> None:
    learner = Learner(small_model(), 30 * DAY_MS, {})
    features = {"ml.amount_cents": 1000, "tx.count.24h": 1}
    learner.observe_decision("e1", 1_000, features, ["terminal:t1"])
    step = learner.observe_label(["e1"], True, 7 * DAY_MS)
    assert step.learned == 0 and learner.model.labels == 0  # known only from day 7
    assert step.entities == {"terminal:t1"}  # the fraud is published at once...
    assert learner.known.count("terminal:t1", 7 * DAY_MS - 1, DAY_MS) == 0  # ...read from day 7
    assert learner.known.count("terminal:t1", 7 * DAY_MS, DAY_MS) == 1
    learner.observe_decision("e2", 7 * DAY_MS - 1, features, [])
    assert learner.model.labels == 0
    step = learner.observe_decision("e3", 7 * DAY_MS, features, [])
    assert step.learned == 1 and learner.known_until_ms == 7 * DAY_MS
    again = learner.observe_label(["e1"], True, 7 * DAY_MS)  # re-delivered
    assert again.learned == 0 and learner.model.labels == 1


def test_a_label_before_its_decision_waits_for_it_and_is_dropped_if_it_never_comes() -> None:
    learner = Learner(small_model(), 30 * DAY_MS, {})
    learner.observe_label(["late-decision"], True, 5)
    learner.observe_label(["never-decided"], True, 5)
    step = learner.observe_decision("late-decision", 10, {"ml.amount_cents": 1}, ["card:c"])
    assert step.learned == 1 and step.entities == {"card:c"} and learner.model.frauds == 1
    learner.advance(31 * DAY_MS)
    learner.forget_older_than(30 * DAY_MS)
    assert learner.unmatched_labels == 1 and learner.model.labels == 1 and not learner.orphans


def test_examples_without_a_label_are_forgotten_after_the_wait() -> None:
    learner = Learner(small_model(), 30 * DAY_MS, {})
    learner.observe_decision("old", 0, {"ml.amount_cents": 1}, [])
    learner.observe_decision("waiting", 0, {"ml.amount_cents": 1}, [])
    learner.observe_label(["waiting"], False, 40 * DAY_MS)
    learner.observe_decision("new", 31 * DAY_MS, {"ml.amount_cents": 1}, [])
    assert learner.forget_older_than(30 * DAY_MS) == 1
    assert set(learner.examples) == {"waiting", "new"}


def test_known_frauds_count_by_the_time_the_label_became_known_within_the_window() -> None:
    known = KnownFrauds(horizon_ms=30 * DAY_MS, keep=2)
    assert known.add("terminal:t", fraud("a", 0, 7 * DAY_MS))
    assert not known.add("terminal:t", fraud("a", 0, 7 * DAY_MS))  # the same fraud again
    known.add("terminal:t", fraud("b", DAY_MS, 8 * DAY_MS))
    assert known.count("terminal:t", 8 * DAY_MS, DAY_MS) == 1  # a was known 1 day before
    assert known.count("terminal:t", 8 * DAY_MS, 7 * DAY_MS) == 2
    known.add("terminal:t", fraud("c", 2 * DAY_MS, 9 * DAY_MS))
    assert [f.event_id for f in known.of("terminal:t")] == ["b", "c"]  # keep=2, newest


def test_the_shelf_picks_the_newest_snapshot_that_knows_nothing_later() -> None:
    shelf = ModelShelf(keep=2)
    model = OnlineModel(small_model())
    for version, known_until in (("v1", 100), ("v2", 200), ("v3", 300)):
        shelf.add(LoadedModel(version, known_until, model))
    picked, late = shelf.pick(250)
    assert picked is not None and picked.version == "v2" and not late
    picked, late = shelf.pick(150)  # v1 was dropped (keep=2): v2 is the oldest there is
    assert picked is not None and picked.version == "v2" and late
    assert ModelShelf(keep=1).pick(0) == (None, False)


def test_snapshots_open_only_with_the_key_they_were_signed_with() -> None:
    rules = small_model()
    model = OnlineModel(rules)
    model.learn_label({"amount_log": 3.0}, True)
    blob, signature = seal_model(model, b"key-1")
    assert open_model(blob, signature, b"key-1", rules.family).labels == 1
    with pytest.raises(ModelError, match="signature"):
        open_model(blob, signature, b"key-2", rules.family)
    with pytest.raises(ModelError, match="signature"):
        open_model(blob + b"x", signature, b"key-1", rules.family)


def test_a_snapshot_of_another_model_family_is_refused() -> None:
    blob, signature = seal_model(OnlineModel(small_model(family="online-0")), b"key-1")
    with pytest.raises(ModelError, match="model family online-0, the rules expect online-3"):
        open_model(blob, signature, b"key-1", "online-3")


def test_a_class_weighted_model_learns_to_rank_frauds_above_legitimate_events() -> None:
    rng = random.Random(3)
    model = OnlineModel(small_model())
    for _ in range(3000):
        is_fraud = rng.random() < 0.05
        amount = rng.gauss(6.0 if is_fraud else 4.0, 0.5)
        model.learn_label({"amount_log": amount, "noise": rng.random()}, is_fraud)
        model.learn_event({"amount_log": amount, "noise": rng.random()})
    high = model.score({"amount_log": 6.2, "noise": 0.5})
    low = model.score({"amount_log": 3.8, "noise": 0.5})
    assert high.ready and high.probability > 0.5 > low.probability
    assert high.contributions[0][0] == "amount_log"


def test_the_model_adds_points_as_a_reason_cold_start_uses_the_anomaly_score() -> None:
    rules = small_model(points=100, anomaly_points=10, anomaly_quantile=0.99)
    ready = ModelScore(0.83, 0.2, 0.6, True, (("amount_to_avg_30d", 1.5),))
    points, detail = probability_points(ready, "online-1.4", rules) or (0, "")
    assert points == 83 and anomaly_points(ready, "online-1.4", rules) is None
    assert "online-1.4" in detail and "amount_to_avg_30d +1.50" in detail
    cold = ModelScore(0.99, 0.7, 0.6, False, ())
    points, detail = anomaly_points(cold, "online-1.1", rules) or (0, "")
    assert points == 10 and probability_points(cold, "online-1.1", rules) is None
    assert detail.startswith("anomaly score 0.70 above 0.60, the 99th percentile")
    assert probability_points(ModelScore(0.001, 0.0, None, True, ()), "v", rules) is None


@pytest.mark.parametrize("cut", [None, 0.7, 0.75])
def test_cold_start_adds_nothing_at_or_below_the_cut_or_before_there_is_one(
    cut: float | None,
) -> None:
    cold = ModelScore(0.99, 0.7, cut, False, ())
    assert anomaly_points(cold, "online-1.1", small_model(anomaly_points=10)) is None


def test_the_anomaly_cut_flags_about_the_configured_share_and_an_outlier() -> None:
    rules = small_model(anomaly_window=100, anomaly_quantile=0.98, anomaly_quantile_window=1000)
    model, rng = OnlineModel(rules), random.Random(11)

    def ordinary() -> dict[str, float]:
        return {"amount_log": rng.gauss(4.0, 0.5), "hour": rng.uniform(8, 20)}

    for _ in range(199):  # the trees' first window, then 99 scored: not enough to tell
        model.learn_event(ordinary())
    assert model.anomaly_cut is None
    model.learn_event(ordinary())
    assert model.anomaly_cut is not None
    for _ in range(1800):
        model.learn_event(ordinary())
    cut = model.anomaly_cut
    assert cut is not None
    flagged = sum(model.score(ordinary()).anomaly > cut for _ in range(5000))
    assert 25 <= flagged <= 250  # 2% of 5,000 is 100
    outlier = model.score({"amount_log": 9.0, "hour": 3.0})
    assert outlier.anomaly > cut and outlier.anomaly_cut == cut


def _label(event_id: str, user: str, is_fraud: bool, at_ms: int) -> Label:
    return Label(
        label_id=f"l-{event_id}",
        subject_type=SubjectType.USER,
        subject_id=user,
        is_fraud=is_fraud,
        event_ids=[event_id],
        labelled_at=utc_from_ms(at_ms),
        source="test",
    )


def test_a_replay_never_scores_with_a_label_known_after_the_event() -> None:
    rules = RULES.model_copy(update={"model": small_model()})
    start = factories.NOW - timedelta(days=20)
    events, labels = [], []
    for i in range(200):
        at = start + timedelta(hours=i)
        event = factories.transaction(
            event_id=f"r-{i}", occurred_at=at, user_id=f"u{i % 5}", terminal_id=f"t{i % 3}"
        )
        events.append(event)
        labels.append(_label(event.event_id, event.user_id, i % 10 == 0, event_ms(at) + 3 * DAY_MS))
    labels.sort(key=lambda label: label.labelled_at)
    replay = Replay(rules, b"k", default_list_view(b"k"), learn=True)
    learned_before = []
    for replayed in replay.run(events, labels):
        assert replay.learner is not None
        assert replay.learner.known_until_ms <= event_ms(replayed.event.occurred_at)
        learned_before.append(replay.learner.model.labels)
    assert learned_before[71] == 0  # 72 h: the first label is not known yet
    assert learned_before[-1] == 200 - 72  # every label known by the last event's time


def event_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
