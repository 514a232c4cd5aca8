"""The model's side of a decision (pure, compiled with the scoring hot path): the inputs it
reads from a decision's features, its score, and the reasons that score adds. The learner
rebuilds the same inputs from each published decision, so training and scoring read exactly
the same numbers.

>>> from config.rules import load_rules
>>> inputs = model_inputs({"ml.amount_cents": 12_000, "tx.count.30d": 1}, load_rules().model)
>>> inputs["amount_log"] == math.log1p(120.0), inputs["user_tx_count_30d_log"] == math.log1p(1)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from config.rules import ModelRules
from engine.features import at_ms_of, local_time, scripted_agent, window_feature
from engine.lists import BLOCK_PREFIX
from engine.velocity import Features, VelocityState
from schemas.models import GiftEvent, LoginEvent, TransactionEvent

ML_PREFIX = "ml."
"""Decision features the model reads that the rules do not already publish."""
_AMOUNT = "ml.amount_cents"
_HOUR = "ml.hour"
_WEEKEND = "ml.weekend"
_MAX_RATIO = 20.0
_FIRST_TRANSACTION = "first_transaction"


def is_model_scored(features: Features) -> bool:
    """Whether a decision's features hold the model's inputs (transactions, model on)."""
    return _AMOUNT in features


FLOW_PREFIX = "ml.flow."
"""Features a login or gift decision adds for its flow's model."""
_FLOW_HOUR = FLOW_PREFIX + "hour"
_FLOW_NETWORK = FLOW_PREFIX + "net."
_FLOW_AMOUNT = FLOW_PREFIX + "amount_cents"
_FLOW_SCRIPTED = FLOW_PREFIX + "agent_scripted"
_LIST_PREFIX = "list."
"""Every list hit's feature (block or allow): a flow model reads the block hits' count."""


def is_flow_scored(features: Features) -> bool:
    """Whether a decision's features hold a flow model's inputs (logins, gifts)."""
    return _FLOW_HOUR in features


def flow_features(
    event: LoginEvent | GiftEvent, local_utc_offset_hours: int, scripted_agents: Iterable[str]
) -> Features:
    """What a login or gift event adds to its decision's features for its flow's model:
    the local hour, its network flags, a gift's amount, a scripted client's user agent."""
    features: Features = {_FLOW_HOUR: local_time(event.occurred_at, local_utc_offset_hours).hour}
    for flag in event.network_flags:
        features[_FLOW_NETWORK + flag.value] = 1
    if isinstance(event, GiftEvent) and event.amount_cents is not None:
        features[_FLOW_AMOUNT] = event.amount_cents
    if scripted_agent(event.user_agent, scripted_agents) is not None:
        features[_FLOW_SCRIPTED] = 1
    return features


def flow_inputs(features: Features, rules: ModelRules) -> dict[str, float]:
    """A flow model's inputs from a decision's features alone (the learner rebuilds them
    from the published decision): every window and history feature log-scaled by its name
    (an absent one is a 0, as a sparse model reads it), the list hits as one count, and the
    hour as night or not."""
    inputs: dict[str, float] = {}
    for name, value in features.items():
        if name.startswith(_LIST_PREFIX):
            continue
        if name == _FLOW_HOUR:
            inputs["night"] = float(value <= rules.night_until_hour)
        else:
            inputs[name] = math.log1p(max(value, 0))
    inputs["list_block_hits"] = list_block_hits(features)
    return inputs


def list_block_hits(features: Features) -> float:
    """How many block-list values a decision's features say the event hit."""
    return float(sum(1 for name in features if name.startswith(BLOCK_PREFIX)))


@cache
def known_fraud_feature(entity_type: str, window: str) -> str:
    return f"{ML_PREFIX}known_frauds.{entity_type}.{window}"


FIRST_AT, LAST_AT = "first_at_s", "last_at_s"
"""When the earliest and the latest fraud known on an entity happened (epoch seconds, -1:
none): ``model_features`` turns them into ages relative to the event."""
FIRST_DAYS, LAST_HOURS = "first_days", "last_hours"
_AMOUNT_MEDIAN = "ml.amount_median_cents"
_AMOUNT_MAX = "ml.amount_max_cents"


@cache
def _known_fraud_input(entity_type: str, window: str) -> str:
    return f"{entity_type}_known_frauds_{window}_log"


@cache
def _user_window_names(window: str) -> tuple[str, str, str, str, str]:
    """A user window's two features and three inputs, named once: every scored and learned
    event needs them."""
    return (
        window_feature("tx", "count", window),
        window_feature("tx", "amount_cents", window),
        f"user_tx_count_{window}_log",
        f"user_avg_amount_{window}_log",
        f"amount_to_avg_{window}",
    )


def model_features(
    event: TransactionEvent,
    known: Features,
    local_utc_offset_hours: int,
    previous_amounts: list[int],
) -> Features:
    """What a transaction adds to its decision's features for the models: its amount, local
    hour and weekday, the median and largest of the user's ``previous_amounts`` (-1: none),
    and what is known of frauds on its terminal or card (``known``, from
    ``engine.learning.KnownFrauds.features``): counts, and how long ago the earliest known
    fraud happened (in whole local days: a compromise lasts days) and the latest (hours)."""
    local = local_time(event.occurred_at, local_utc_offset_hours)
    at_s = int(event.occurred_at.timestamp())
    features: Features = {
        _AMOUNT: event.amount_cents,
        _HOUR: local.hour,
        _WEEKEND: int(local.weekday() >= 5),
        _AMOUNT_MEDIAN: median_of(previous_amounts),
        _AMOUNT_MAX: max(previous_amounts, default=-1),
    }
    offset_s = local_utc_offset_hours * 3600
    today = (at_s + offset_s) // 86_400
    for name, value in known.items():
        if name.endswith(FIRST_AT):
            days = today - (value + offset_s) // 86_400 if value >= 0 else -1
            features[name[: -len(FIRST_AT)] + FIRST_DAYS] = days
        elif name.endswith(LAST_AT):
            hours = (at_s - value) // 3600 if value >= 0 else -1
            features[name[: -len(LAST_AT)] + LAST_HOURS] = hours
        else:
            features[name] = value
    return features


def previous_amounts(state: VelocityState, event: TransactionEvent, window_s: int) -> list[int]:
    """The user's transaction amounts in the window before ``event`` (already counted in
    ``state``: its own amount is taken out once)."""
    amounts = state.amounts("tx", at_ms_of(event), window_s)
    if event.amount_cents in amounts:
        amounts.remove(event.amount_cents)
    return amounts


def median_of(amounts: list[int]) -> int:
    """The median amount (the lower middle of an even count), -1 for none.

    >>> median_of([300, 100, 200, 10_000]), median_of([])
    (200, -1)
    """
    if not amounts:
        return -1
    ordered = sorted(amounts)
    return ordered[(len(ordered) - 1) // 2]


def model_inputs(features: Features, rules: ModelRules) -> dict[str, float]:
    """The model's input vector by name (what river's models learn and score), from a
    decision's features alone: the learner rebuilds it from the published decision, so
    training and scoring read exactly the same numbers."""
    return dict(zip(model_input_names(rules), model_input_values(features, rules), strict=True))


def model_input_names(rules: ModelRules) -> tuple[str, ...]:
    """The names of ``model_input_values``, in its order."""
    return _input_names(
        rules.amount_bands_per_octave * rules.amount_band_octaves,
        rules.user_windows,
        rules.known_fraud_entities,
        rules.known_fraud_windows,
    )


@cache
def _input_names(
    bands: int,
    user_windows: tuple[str, ...],
    known_fraud_entities: tuple[str, ...],
    known_fraud_windows: tuple[str, ...],
) -> tuple[str, ...]:
    names = ["amount_log", "night", "weekend", *_band_names(bands)]
    for window in user_windows:
        names += _user_window_names(window)[2:]
    for entity_type in known_fraud_entities:
        names += [_known_fraud_input(entity_type, window) for window in known_fraud_windows]
    names += [
        _FIRST_TRANSACTION,
        "seconds_since_previous_log",
        "new_country",
        "new_device",
        "list_block_hits",
    ]
    return tuple(names)


def model_input_values(features: Features, rules: ModelRules) -> list[float]:
    """The model's inputs in the order of ``model_input_names`` (a worker's snapshot scores
    them by position). Counts and amounts are log-scaled; the amount is also compared with
    the user's averages."""
    amount = features.get(_AMOUNT, 0) / 100
    hour = features.get(_HOUR, 12)
    values = [
        math.log1p(amount),
        float(hour <= rules.night_until_hour),
        float(features.get(_WEEKEND, 0)),
        *amount_bands(amount, rules.amount_bands_per_octave, rules.amount_band_octaves),
    ]
    for window in rules.user_windows:
        count_name, total_name, _, _, _ = _user_window_names(window)
        count = features.get(count_name, 0)
        total = features.get(total_name, 0) / 100
        average = total / count if count else 0.0
        values.append(math.log1p(count))
        values.append(math.log1p(average))
        values.append(min(amount / average, _MAX_RATIO) if average else 1.0)
    for entity_type in rules.known_fraud_entities:
        for window in rules.known_fraud_windows:
            values.append(math.log1p(features.get(known_fraud_feature(entity_type, window), 0)))
    since = features.get("tx.seconds_since_previous", -1)
    values.append(float(since < 0))
    values.append(math.log1p(max(since, 0)))
    values.append(float(features.get("tx.new_country", 0)))
    values.append(float(features.get("tx.new_device", 0)))
    values.append(list_block_hits(features))
    return values


def tree_input_names(rules: ModelRules) -> tuple[str, ...]:
    """The names of ``tree_input_values``, in its order."""
    return _tree_names(rules.user_windows, rules.known_fraud_entities, rules.known_fraud_windows)


@cache
def _tree_names(
    user_windows: tuple[str, ...],
    known_fraud_entities: tuple[str, ...],
    known_fraud_windows: tuple[str, ...],
) -> tuple[str, ...]:
    names = ["amount", "hour", "weekend", "amount_to_median", "amount_to_max"]
    for window in user_windows:
        names += [f"user_tx_count_{window}", f"user_avg_amount_{window}"]
    for entity_type in known_fraud_entities:
        names += [f"{entity_type}_known_frauds_{window}" for window in known_fraud_windows]
        names += [f"{entity_type}_first_fraud_days", f"{entity_type}_last_fraud_hours"]
    names += [
        "seconds_since_previous",
        "new_country",
        "new_device",
        "list_block_hits",
    ]
    return tuple(names)


def tree_input_values(features: Features, rules: ModelRules) -> list[float]:
    """The batch model's inputs in the order of ``tree_input_names``: raw amounts (reais),
    counts and ages, as trees need no scaling; the amount also relative to the user's
    median and largest previous amount (0 when there is none). Always finite."""
    amount = features.get(_AMOUNT, 0) / 100
    median = features.get(_AMOUNT_MEDIAN, -1) / 100
    largest = features.get(_AMOUNT_MAX, -1) / 100
    values = [
        amount,
        float(features.get(_HOUR, 12)),
        float(features.get(_WEEKEND, 0)),
        amount / median if median > 0 else 0.0,
        amount / largest if largest > 0 else 0.0,
    ]
    for window in rules.user_windows:
        count_name, total_name, _, _, _ = _user_window_names(window)
        count = features.get(count_name, 0)
        values.append(float(count))
        values.append(features.get(total_name, 0) / 100 / count if count else 0.0)
    for entity_type in rules.known_fraud_entities:
        for window in rules.known_fraud_windows:
            values.append(float(features.get(known_fraud_feature(entity_type, window), 0)))
        values.append(float(features.get(known_fraud_fact(entity_type, FIRST_DAYS), -1)))
        values.append(float(features.get(known_fraud_fact(entity_type, LAST_HOURS), -1)))
    values.append(float(features.get("tx.seconds_since_previous", -1)))
    values.append(float(features.get("tx.new_country", 0)))
    values.append(float(features.get("tx.new_device", 0)))
    values.append(list_block_hits(features))
    return values


@cache
def known_fraud_fact(entity_type: str, fact: str) -> str:
    """A feature of the frauds known on an entity: when the earliest and latest happened
    (``FIRST_AT``, ``LAST_AT``, until ``model_features`` makes them the ages
    ``FIRST_DAYS``, ``LAST_HOURS``)."""
    return f"{ML_PREFIX}known_frauds.{entity_type}.{fact}"


def amount_bands(amount: float, per_octave: int, octaves: int) -> list[float]:
    """One-hot band of the amount on a log scale (``per_octave`` bands per doubling, from
    R$ 1 up to 2**octaves; beyond, the last band): lets a linear model give a range of
    amounts its own weight, which a log amount alone cannot. Dense (every band 0 or 1),
    because a standard scaler erases a feature that is only ever seen as 1.

    >>> amount_bands(230.0, 4, 12).index(1.0)
    31
    """
    count = per_octave * octaves
    bands = [0.0] * count
    if count:
        bands[min(count - 1, int(math.log2(max(amount, 1.0)) * per_octave))] = 1.0
    return bands


@cache
def _band_names(count: int) -> tuple[str, ...]:
    """Formatted once per band count: every scored and learned event needs them."""
    return tuple(f"amount_band_{k}" for k in range(count))


@dataclass(frozen=True)
class ModelScore:
    probability: float
    """Supervised fraud probability, 0-1."""
    anomaly: float
    """Unsupervised anomaly score, 0-1 (higher: more unusual)."""
    anomaly_cut: float | None
    """The ``anomaly_quantile`` of the anomaly scores of the transactions learned so far:
    above it, a transaction is unusual (None until enough were scored to tell)."""
    ready: bool
    """Whether the supervised model has learned enough labels to be trusted."""
    contributions: tuple[tuple[str, float], ...]
    """Inputs pushing the probability up most: (name, push); for the online model weight x
    standardised value, for the batch model the log-odds its splits on the input added."""
    parts: tuple[tuple[str, float], ...] = ()
    """The probability of each model that went into ``probability`` (``online``,
    ``batch``), when more than one did."""


def top_contributions(
    positive_pushes: Iterable[tuple[str, float]], count: int
) -> tuple[tuple[str, float], ...]:
    """The ``count`` largest pushes, rounded for the decision's reason; ties keep the
    inputs' order (as ``sorted(..., reverse=True)[:count]``). Kept while reading, not
    sorted: a model scores ~70 inputs per transaction and names three.

    >>> top_contributions([("a", 1.0), ("b", 3.0), ("c", 1.0), ("d", 2.0)], 3)
    (('b', 3.0), ('d', 2.0), ('a', 1.0))
    """
    if count <= 0:
        return ()
    top: list[tuple[str, float]] = []  # largest first
    for name, push in positive_pushes:
        if len(top) < count or push > top[-1][1]:
            at = len(top)
            while at and top[at - 1][1] < push:
                at -= 1
            top.insert(at, (name, push))
            if len(top) > count:
                top.pop()
    return tuple((name, round(push, 3)) for name, push in top)


def _model_detail(what: str, score: ModelScore, version: str) -> str:
    """``what`` the model saw, its version and the inputs that pushed the probability up."""
    top = ", ".join(f"{name} {push:+.2f}" for name, push in score.contributions)
    return f"{what}, model {version}" + (f"; pushed up by {top}" if top else "")


def probability_points_of(probability: float, rules: ModelRules) -> int:
    """The points a ready model's ``probability`` adds (its reason appears above 0)."""
    return round(rules.points * probability)


def names_its_inputs(
    probability: float, anomaly: float, anomaly_cut: float | None, ready: bool, rules: ModelRules
) -> bool:
    """Whether a model reason will name the inputs that pushed most (``probability_points``,
    ``anomaly_points``): a scorer may skip working them out otherwise."""
    if ready:
        return probability_points_of(probability, rules) > 0
    return anomaly_cut is not None and anomaly > anomaly_cut and rules.anomaly_points > 0


def probability_points(
    score: ModelScore, version: str, rules: ModelRules
) -> tuple[int, str] | None:
    """The supervised probability's points, once the model is ready (None: not ready, or
    0 points)."""
    if not score.ready:
        return None
    points = probability_points_of(score.probability, rules)
    if points <= 0:
        return None
    return points, _model_detail(f"fraud probability {score.probability:.2f}", score, version)


def anomaly_points(score: ModelScore, version: str, rules: ModelRules) -> tuple[int, str] | None:
    """Cold start: ``anomaly_points`` for an event more unusual than the
    ``anomaly_quantile`` of those learned (None: the model is ready, no cut yet, not above
    it, or 0 points)."""
    cut = score.anomaly_cut
    if score.ready or cut is None or score.anomaly <= cut or rules.anomaly_points <= 0:
        return None
    percentile = f"{rules.anomaly_quantile * 100:g}th percentile"
    what = f"anomaly score {score.anomaly:.2f} above {cut:.2f}, the {percentile} (cold start)"
    return rules.anomaly_points, _model_detail(what, score, version)
