"""What a rule is: one evaluator per reason code, and how a flow's evaluators make its reasons.

Every reason code the engine can put on a decision is one ``Rule`` (or, for the codes that
only tighten a verdict, one ``Tightener``): the function that decides whether it fires and
with what points, beside what it reads, the ``config/rules.toml`` key of its points, its
formula in words and where in the seeds it comes from. ``engine.catalogue`` lists them all,
in the order a decision shows them; the contract test (``tests/unit/test_catalogue.py``) runs
the same checks over every one of them.

An evaluator is pure: the same ``Facts`` always give the same answer, and it reads nothing
else. Evaluators of a capped factor (the Capy Pay model's velocity, amount, geolocation and
behaviour) give fractional points, rounded half up, a reason only when that is above 0, and
the factor's excess taken back by one negative ``<FACTOR>_CAP`` reason, so a decision's
reasons always add up to its score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from config.rules import ActionOptions, CapyPay, Detection, GiftRules, RuleSet
from engine.features import local_time
from engine.lists import ListVerdict
from engine.model_inputs import ModelScore
from engine.velocity import Features
from schemas.models import (
    EVENT_KIND_OF,
    EventKind,
    GiftEvent,
    InputEvent,
    LoginEvent,
    Reason,
    RiskBand,
    TransactionEvent,
    Verdict,
)


class Facts:
    """Everything an evaluator may read about one event: the event, its features (the
    subject's window values and what the views added: lists, blocks, history), the rules,
    the list and fraud-block matches judged together (``engine.lists.judge_hits``) and the
    model's score and version when a model scored it. The rules' sections the evaluators
    read are taken out once here, as the scoring hot path reads them for every rule."""

    def __init__(
        self,
        event: InputEvent,
        features: Features,
        rules: RuleSet,
        judged: ListVerdict,
        model: tuple[ModelScore, str] | None = None,
    ) -> None:
        self.event, self.features, self.rules = event, features, rules
        self.judged, self.model = judged, model
        self.kind = EVENT_KIND_OF[type(event)]
        self.capypay: CapyPay = rules.capypay
        self.detection: Detection = rules.detection
        self.gift: GiftRules = rules.gift
        self.action_options: ActionOptions | None = (
            self.capypay.actions.get(event.tx_type) if isinstance(event, TransactionEvent) else None
        )
        """A transaction type's own options (``[capypay.actions.<type>]``), if it has any."""
        self.flags = frozenset(event.network_flags)
        self.metric = _subject_metric(event)
        """The metric a transaction or login counts under in its subject's windows (gifts:
        empty, their rules name their metrics)."""
        self.local = local_time(event.occurred_at, self.capypay.velocity.local_utc_offset_hours)
        """The event's wall-clock time where the rules place their users."""


def transaction_of(facts: Facts) -> TransactionEvent:
    """The event of a rule evaluated on transactions only."""
    event = facts.event
    assert isinstance(event, TransactionEvent)
    return event


def login_of(facts: Facts) -> LoginEvent:
    """The event of a rule evaluated on logins only."""
    event = facts.event
    assert isinstance(event, LoginEvent)
    return event


def gift_of(facts: Facts) -> GiftEvent:
    """The event of a rule evaluated on gift events only."""
    event = facts.event
    assert isinstance(event, GiftEvent)
    return event


def scored_of(facts: Facts) -> TransactionEvent | LoginEvent:
    """The event of a Capy Pay rule (only transactions and logins reach them)."""
    event = facts.event
    assert isinstance(event, (TransactionEvent, LoginEvent))
    return event


def _subject_metric(event: InputEvent) -> str:
    if isinstance(event, TransactionEvent):
        return "tx"
    if isinstance(event, LoginEvent):
        return "login_ok" if event.success else "login_failed"
    return ""


Fired = tuple[float, str]
"""A rule that fires: its points (fractional for a capped factor's rules) and its detail."""


@dataclass(frozen=True)
class Rule:
    """One reason code: the evaluator that fires it and what a reader needs to trust it."""

    code: str
    evaluate: Callable[[Facts], Fired | None]
    kinds: frozenset[EventKind]
    """The event kinds it is evaluated on."""
    reads: tuple[str, ...]
    """The features it reads (a trailing ``*`` stands for any ending), beside the event."""
    points: str
    """The ``RuleSet`` attribute path of its points (of their maximum, when they vary)."""
    when: str
    """Its formula in words."""
    seed: str
    """Where the seeds define it (``ours``: not in the seeds)."""


@dataclass(frozen=True)
class Section:
    """Rules read one after the other; a named factor caps the sum of its rules' points."""

    rules: tuple[Rule, ...]
    factor: str = ""
    """The capped factor's name (``GEO``...); empty: uncapped, points as given."""
    cap: Callable[[Facts], int] | None = None
    active: Callable[[Facts], bool] | None = None
    """When the section is evaluated at all (None: always)."""

    def add_to(self, found: list[Reason], facts: Facts) -> None:
        """Append this section's reasons to ``found`` (one list per decision: the hot path
        allocates as little as it can)."""
        if self.active is not None and not self.active(facts):
            return
        if self.cap is None:
            for rule in self.rules:
                fired = rule.evaluate(facts)
                if fired is not None:
                    found.append(Reason(code=rule.code, points=int(fired[0]), detail=fired[1]))
            return
        first, total = len(found), 0
        for rule in self.rules:
            fired = rule.evaluate(facts)
            if fired is not None:
                earned = int(fired[0] + 0.5)  # the seed's formulas give fractions: round half up
                if earned > 0:
                    found.append(Reason(code=rule.code, points=earned, detail=fired[1]))
                    total += earned
        if len(found) > first:
            add_cap(found, total, self.factor, self.cap(facts))


def add_cap(found: list[Reason], total: int, factor: str, cap: int) -> None:
    """When a factor's ``total`` points pass ``cap``, the excess taken back."""
    if total > cap:
        detail = f"{factor.lower()} factor capped at {cap}"
        found.append(Reason(code=f"{factor}_CAP", points=cap - total, detail=detail))


@dataclass(frozen=True)
class JudgedSection:
    """The list and fraud-block matches. Their points come from one formula over all of
    them (``engine.lists.judge_hits``: the most severe match's points, a fixed amount per
    further match, a maximum), so each code's evaluator reads its part of that judgment and
    they show in the judge's order; a named factor shows 0-point matches first and caps the
    rest."""

    rules: tuple[Rule, ...]
    factor: str = ""
    cap: Callable[[Facts], int] | None = None

    def add_to(self, found: list[Reason], facts: Facts) -> None:
        if facts.judged.reasons:
            found += self._judged(facts)

    def _judged(self, facts: Facts) -> list[Reason]:
        order = [reason.code for reason in facts.judged.reasons]
        fired = [
            Reason(code=rule.code, points=int(found[0]), detail=found[1])
            for rule in self.rules
            if (found := rule.evaluate(facts)) is not None
        ]
        fired.sort(key=lambda reason: order.index(reason.code))
        if self.cap is None:
            return fired
        unscored = [reason for reason in fired if reason.points == 0]
        scored = [reason for reason in fired if reason.points > 0]
        if scored:
            add_cap(scored, sum(r.points for r in scored), self.factor, self.cap(facts))
        return [*unscored, *scored]


def reasons_of(sections: Iterable[Section | JudgedSection], facts: Facts) -> list[Reason]:
    """The reasons ``sections`` give ``facts``, one section after the other."""
    found: list[Reason] = []
    for section in sections:
        section.add_to(found, facts)
    return found


@dataclass(frozen=True)
class Verdicts:
    """What the tighteners read besides the facts: the score's band and the verdict so far."""

    band: RiskBand
    verdict: Verdict


@dataclass(frozen=True)
class Tightener:
    """A 0-point reason that can only make the verdict stricter (or keep it, and explain)."""

    code: str
    evaluate: Callable[[Facts, Verdicts], tuple[Verdict, str] | None]
    kinds: frozenset[EventKind]
    reads: tuple[str, ...]
    when: str
    seed: str
