"""Online models for logins and gift events: their inputs, learning from delayed labels,
and their part of a decision."""

from __future__ import annotations

from datetime import timedelta

from config.rules import load_rules
from engine.decide import decide_event
from engine.learning import FlowModel, Learner, LoadedModel, flow_rules
from engine.model_inputs import flow_inputs, is_flow_scored, is_model_scored
from engine.velocity import VelocityState
from schemas.models import LoginEvent
from tests import factories

RULES = load_rules()
READY = RULES.model_copy(
    update={
        "model": RULES.model.model_copy(
            update={
                "flows": RULES.model.flows.model_copy(update={"min_labels": 4, "min_frauds": 2})
            }
        )
    }
)


def _login(n: int, bot: bool) -> LoginEvent:
    return factories.login(
        event_id=f"l-{n}",
        user_id=f"u-{n}",
        occurred_at=factories.NOW + timedelta(seconds=n),
        success=not bot,
        failure_reason="BAD_PASSWORD" if bot else None,
        device_fingerprint="bot" if bot else f"phone-{n}",
        network_flags=["HOSTING"] if bot else [],
        user_agent="python-requests/2.31" if bot else "CapyPay/5.2",
    )


def test_login_and_gift_decisions_carry_the_flow_features_not_the_transaction_ones() -> None:
    login = decide_event(VelocityState(), _login(0, bot=True), RULES).assessment.features
    gift = decide_event(VelocityState(), factories.gift(), RULES).assessment.features
    assert is_flow_scored(login) and is_flow_scored(gift)
    assert not is_model_scored(login) and not is_model_scored(gift)
    assert login["ml.flow.net.HOSTING"] == 1 and login["ml.flow.agent_scripted"] == 1
    assert gift["ml.flow.amount_cents"] > 0
    inputs = flow_inputs(login, RULES.model)
    assert "night" in inputs and inputs["list_block_hits"] == 0
    assert not any(name.startswith("list.") for name in inputs)


def test_a_flow_model_learns_delayed_labels_and_its_points_join_the_decision() -> None:
    learner = Learner.for_flow(READY.model, 30 * 86_400_000, {})
    assert isinstance(learner.model, FlowModel) and learner.rules == flow_rules(READY.model)
    decided = []
    for n in range(40):
        event = _login(n, bot=n % 2 == 0)
        features = decide_event(VelocityState(), event, READY).assessment.features
        at_ms = int(event.occurred_at.timestamp() * 1000)
        learner.observe_decision(event.event_id, at_ms, features, ())
        decided.append((event, at_ms))
    labelled_ms = decided[-1][1] + 1
    for event, _ in decided:
        learner.observe_label(
            [event.event_id], event.event_id.endswith(("0", "2", "4", "6", "8")), labelled_ms
        )
    assert learner.model.labels == 0  # not known before the event time reaches the labels
    learner.advance(labelled_ms)
    assert learner.model.labels == 40 and learner.model.ready
    loaded = LoadedModel("flow-1.test", labelled_ms, learner.model)
    bot = decide_event(VelocityState(), _login(100, bot=True), READY, model=loaded)
    person = decide_event(VelocityState(), _login(101, bot=False), READY, model=loaded)
    assert bot.model_score is not None and person.model_score is not None
    assert bot.model_score.probability > person.model_score.probability
    (reason,) = [r for r in bot.assessment.reasons if r.code == "MODEL_FRAUD_PROBABILITY"]
    assert reason.points == round(READY.model.flows.points * bot.model_score.probability)
    assert "flow-1.test" in reason.detail
