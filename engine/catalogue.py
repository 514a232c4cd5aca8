"""Every reason code, in one catalogue: the rules of each flow in the order a decision shows
them, then the tighteners that can only make its verdict stricter (pure).

A flow's reasons are its sections' (``engine.evaluators``) one after the other: for
transactions and logins the Capy Pay factors (``engine.capypay``), for gifts the GiftPix
rules (``engine.giftpix``); then the combinations of signals (``engine.detection``), the
model's points and the clock-skew note. ``RULES`` and ``TIGHTENERS`` list each code once;
the contract test runs its checks over every one of them.

>>> len({rule.code for rule in RULES}) == len(RULES)
True
>>> [t.code for t in TIGHTENERS_OF[EventKind.LOGIN]]
['LIST_SEVERITY_BLOCK', 'ACCOUNT_FROZEN']
"""

from __future__ import annotations

from config.rules import ModelRules, RuleSet
from engine import capypay, detection, giftpix
from engine.accounts import ACCOUNT_FROZEN, FROZEN_FEATURE, frozen_reason
from engine.admission import CLOCK_SKEW_FEATURE
from engine.evaluators import (
    Facts,
    Fired,
    JudgedSection,
    Rule,
    Section,
    Tightener,
    Verdicts,
    reasons_of,
    transaction_of,
)
from engine.features import type_metric, window_feature
from engine.learning import flow_rules
from engine.lists import ALLOW_PREFIX, BLOCK_PREFIX
from engine.model_inputs import anomaly_points, probability_points
from engine.money import format_brl
from schemas.models import (
    EventKind,
    ListSeverity,
    Reason,
    RiskBand,
    Verdict,
)

_EVERY_KIND = frozenset(EventKind)
_TX = frozenset({EventKind.TRANSACTION})
_PHASE_3 = 'CP "Fase 3: Inteligência Artificial" (model ours)'


# The model's points.


def _model_rules(facts: Facts) -> ModelRules:
    """Transactions score with the model rules; logins and gifts with their flows' own (a
    copy made per call: each event's one model reason makes it once)."""
    rules = facts.rules.model
    return rules if facts.kind is EventKind.TRANSACTION else flow_rules(rules)


def _fraud_probability(facts: Facts) -> Fired | None:
    if facts.model is None or not facts.model[0].ready:
        return None
    score, version = facts.model
    return probability_points(score, version, _model_rules(facts))


def _anomaly(facts: Facts) -> Fired | None:
    if facts.model is None or facts.model[0].ready:
        return None  # a ready model's points are the probability's
    score, version = facts.model
    return anomaly_points(score, version, _model_rules(facts))


MODEL_RULES = (
    Rule(
        "MODEL_FRAUD_PROBABILITY",
        _fraud_probability,
        _EVERY_KIND,
        (),
        "model.points",
        "round(points x the model's fraud probability), once the model learned min_labels "
        "labels with min_frauds frauds (logins and gifts: their own models and points)",
        _PHASE_3,
    ),
    Rule(
        "MODEL_ANOMALY",
        _anomaly,
        _EVERY_KIND,
        (),
        "model.anomaly_points",
        "before that: the anomaly score above the anomaly_quantile of those learned",
        f'{_PHASE_3}, "Detecção de anomalias não supervisionada"',
    ),
)


def _clock_skew(facts: Facts) -> Fired | None:
    skew_s = facts.features.get(CLOCK_SKEW_FEATURE)
    if not skew_s:
        return None
    return 0, f"occurred_at was {int(skew_s)}s ahead of its arrival: scored as of its arrival"


CLOCK_SKEW = Rule(
    "EVENT_CLOCK_SKEW",
    _clock_skew,
    _EVERY_KIND,
    (CLOCK_SKEW_FEATURE,),
    "",
    "stamped more than validation.max_future_skew ahead of its arrival: scored as of its arrival",
    "ours",
)
_LAST = (Section(MODEL_RULES), Section((CLOCK_SKEW,)))
SECTIONS_OF: dict[EventKind, tuple[Section | JudgedSection, ...]] = {
    EventKind.TRANSACTION: (*capypay.TRANSACTION_SECTIONS, detection.TRANSACTION_SECTION, *_LAST),
    EventKind.LOGIN: (*capypay.LOGIN_SECTIONS, detection.LOGIN_SECTION, *_LAST),
    EventKind.GIFT: (giftpix.LIST_SECTION, giftpix.SECTION, detection.GIFT_SECTION, *_LAST),
}


def reasons_for(facts: Facts) -> list[Reason]:
    """The scored reasons of the event: every section of its kind's, in order."""
    return reasons_of(SECTIONS_OF[facts.kind], facts)


# The tighteners: after the score, in this order.


def _block_on_medium(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    event, options = transaction_of(facts), facts.action_options
    if options is None or not options.block_on_medium_risk:
        return None
    if so_far.band is RiskBand.LOW or so_far.verdict is Verdict.BLOCK:
        return None
    return Verdict.BLOCK, f"{event.tx_type.value} is blocked from {so_far.band.value} risk"


def _action_velocity(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    """More than the type's hourly count or volume (none when its features are absent: a
    re-delivery first decided before the limit was configured, or a challenger's window)."""
    event, options = transaction_of(facts), facts.action_options
    limit = None if options is None else options.velocity
    if limit is None or so_far.verdict is Verdict.BLOCK:
        return None
    metric, window = type_metric(event.tx_type), limit.hour_window
    count = facts.features.get(window_feature(metric, "count", window))
    volume = facts.features.get(window_feature(metric, "amount_cents", window))
    if count is None or volume is None:
        return None
    excess = []
    kind = event.tx_type.value
    if count > limit.transactions_per_hour:
        excess.append(f"{count} {kind} in {window} (limit {limit.transactions_per_hour})")
    if volume > limit.volume_per_hour_cents:
        excess.append(
            f"{format_brl(volume)} of {kind} in {window} "
            f"(limit {format_brl(limit.volume_per_hour_cents)})"
        )
    return (Verdict.BLOCK, "; ".join(excess)) if excess else None


def _high_value_review(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    event, options = transaction_of(facts), facts.action_options
    threshold = None if options is None else options.high_value_review_cents
    if threshold is None or event.amount_cents < threshold or so_far.verdict is not Verdict.ALLOW:
        return None
    return (
        Verdict.REVIEW,
        f"{event.tx_type.value} of {format_brl(event.amount_cents)} "
        f"needs review from {format_brl(threshold)}",
    )


_SEVERITIES = list(ListSeverity)


def _list_severity(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    kind, severity = facts.kind, facts.judged.severity
    if severity is None or so_far.verdict is Verdict.BLOCK:
        return None
    block_from = facts.rules.lists.block_from.get(kind)
    if block_from is None:
        return None
    if _SEVERITIES.index(severity) < _SEVERITIES.index(block_from):
        return None
    detail = f"a {severity.value} block-list hit blocks a {kind.value} (from {block_from.value})"
    return Verdict.BLOCK, detail


def _frozen(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    if facts.features.get(FROZEN_FEATURE):
        return Verdict.BLOCK, frozen_reason().detail
    return None


def _manual_review(facts: Facts, so_far: Verdicts) -> tuple[Verdict, str] | None:
    """The seed's ``requireManualReview``: a REVIEW of this type does not "continue with
    flag" but waits for an analyst (on the final verdict: not on what ends up blocked)."""
    event, options = transaction_of(facts), facts.action_options
    if so_far.verdict is not Verdict.REVIEW or options is None:
        return None
    if not options.require_manual_review:
        return None
    return (
        Verdict.REVIEW,
        f"{event.tx_type.value} under review: hold the transaction until an analyst decides "
        "(do not continue with the flag)",
    )


_MIDDLEWARE = 'CP "Middleware"'
_LIST_SEVERITY = Tightener(
    "LIST_SEVERITY_BLOCK",
    _list_severity,
    _EVERY_KIND,
    (f"{BLOCK_PREFIX}*", f"{ALLOW_PREFIX}*"),
    "the most severe block-list hit in force reaches the flow's lists.block_from: BLOCK",
    'CP "Níveis de Severidade"',
)
_FROZEN = Tightener(
    ACCOUNT_FROZEN,
    _frozen,
    _EVERY_KIND,
    (FROZEN_FEATURE,),
    "the user's account is frozen (a CRITICAL hit froze it; an admin unfreezes it): BLOCK",
    'CP "Níveis de Severidade" CRITICAL "bloquear tudo"',
)
TRANSACTION_TIGHTENERS = (
    Tightener(
        "ACTION_BLOCK_ON_MEDIUM_RISK",
        _block_on_medium,
        _TX,
        (),
        "a type with block_on_medium_risk at MEDIUM risk or above: BLOCK",
        f"{_MIDDLEWARE} blockOnMediumRisk",
    ),
    Tightener(
        "ACTION_VELOCITY_LIMIT",
        _action_velocity,
        _TX,
        ("tx_*.count.*", "tx_*.amount_cents.*"),
        "more than the type's transactions_per_hour, or volume_per_hour_cents of it, by the "
        "user in hour_window, this one included: BLOCK",
        "CP velocityCheckMiddleware",
    ),
    Tightener(
        "ACTION_HIGH_VALUE_REVIEW",
        _high_value_review,
        _TX,
        (),
        "from the type's high_value_review_cents: at least REVIEW",
        "CP highValueTransactionMiddleware",
    ),
    _LIST_SEVERITY,
    _FROZEN,
    Tightener(
        "ACTION_MANUAL_REVIEW_REQUIRED",
        _manual_review,
        _TX,
        (),
        "a REVIEW (final verdict) of a type with require_manual_review: the caller holds the "
        "transaction until an analyst decides",
        "CP requireManualReview",
    ),
)
TIGHTENERS_OF: dict[EventKind, tuple[Tightener, ...]] = {
    EventKind.TRANSACTION: TRANSACTION_TIGHTENERS,
    EventKind.LOGIN: (_LIST_SEVERITY, _FROZEN),
    EventKind.GIFT: (_LIST_SEVERITY, _FROZEN),
}


def tighten(facts: Facts, band: RiskBand, verdict: Verdict) -> tuple[Verdict, list[Reason]]:
    """The verdict after the flow's tighteners, and a 0-point reason for each that acted."""
    notes = []
    so_far = Verdicts(band, verdict)
    for tightener in TIGHTENERS_OF[facts.kind]:
        acted = tightener.evaluate(facts, so_far)
        if acted is not None:
            if acted[0] is not so_far.verdict:
                so_far = Verdicts(band, acted[0])
            notes.append(Reason(code=tightener.code, points=0, detail=acted[1]))
    return so_far.verdict, notes


RULES: tuple[Rule, ...] = tuple(
    dict.fromkeys(
        rule for sections in SECTIONS_OF.values() for section in sections for rule in section.rules
    )
)
"""Every scored rule once, in the order decisions show them."""
TIGHTENERS: tuple[Tightener, ...] = tuple(
    dict.fromkeys(t for tighteners in TIGHTENERS_OF.values() for t in tighteners)
)


def points_of(path: str, rules: RuleSet) -> int | None:
    """The points a rule's ``points`` path names in ``rules`` (None: a rule of 0 points)."""
    if not path:
        return None
    value: object = rules
    for name in path.split("."):
        value = getattr(value, name)
    assert isinstance(value, int)
    return value
