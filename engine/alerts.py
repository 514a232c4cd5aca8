"""Alerts from the stream of decisions (pure): the seed's triggers, and its throttling.

Triggers ("Sistema de Alertas"): a CRITICAL block-list hit, and a HIGH one ("Níveis de
Severidade": HIGH "bloquear transações + alertar equipe"); a fraud spike (more than 5% of
the last hour's decisions blocked, once the hour holds enough decisions to say so); an unusual
pattern (a reason code firing far more this hour than its trailing average); slow processing
(a decision more than 5 s after its event reached the broker). Throttling: the same alert
once per 5 min, one alert per user per hour, at most 100 per hour in all. One more, not from
decisions nor in the seed: an audit conflict (``audit_conflict_alert``, raised by the auditor),
and raw personal data in a hashed field of an input (``raw_pii_alert``, raised by the workers).

>>> from datetime import UTC, datetime
>>> from config.rules import load_rules
>>> engine = AlertEngine(load_rules().alerts)
>>> engine.throttle.allow("fraud_spike", None, datetime(2026, 1, 1, tzinfo=UTC))
True
>>> engine.throttle.allow("fraud_spike", None, datetime(2026, 1, 1, 0, 4, tzinfo=UTC))
False
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from config.rules import AlertRule as Rule
from config.rules import AlertRules
from engine.lists import top_block_severity
from schemas.models import Alert, AuditRecord, Decision, ListSeverity, Verdict

CRITICAL_HIT: Rule = "blacklist_hit_critical"
HIGH_HIT: Rule = "blacklist_hit_high"
_HIT_RULES = {ListSeverity.CRITICAL: CRITICAL_HIT, ListSeverity.HIGH: HIGH_HIT}
FRAUD_SPIKE: Rule = "fraud_spike"
UNUSUAL_PATTERN: Rule = "unusual_pattern"
SLOW_PROCESSING: Rule = "system_performance"
AUDIT_CONFLICT: Rule = "audit_conflict"
RAW_PII_IN_HASH: Rule = "raw_pii_in_hash"


@dataclass
class Throttle:
    """Remembers what was sent, to refuse what the seed's limits do not allow."""

    same_alert: timedelta
    per_user: timedelta
    global_per_hour: int
    _last_by_key: dict[str, datetime] = field(default_factory=dict)
    _last_by_user: dict[str, datetime] = field(default_factory=dict)
    _sent: deque[datetime] = field(default_factory=deque)

    @classmethod
    def of(cls, rules: AlertRules) -> Throttle:
        return cls(
            timedelta(seconds=rules.same_alert_seconds),
            timedelta(seconds=rules.per_user_seconds),
            rules.global_per_hour,
        )

    def allow(self, key: str, user: str | None, at: datetime) -> bool:
        last = self._last_by_key.get(key)
        if last is not None and at - last < self.same_alert:
            return False
        if user is not None:
            last_user = self._last_by_user.get(user)
            if last_user is not None and at - last_user < self.per_user:
                return False
        while self._sent and at - self._sent[0] >= timedelta(hours=1):
            self._sent.popleft()
        if len(self._sent) >= self.global_per_hour:
            return False
        self._last_by_key[key] = at
        if user is not None:
            self._last_by_user[user] = at
        self._sent.append(at)
        return True


@dataclass
class _Minute:
    decisions: int = 0
    blocked: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class AlertEngine:
    """Per-minute counts of the last day of decisions, and the throttle."""

    def __init__(self, rules: AlertRules) -> None:
        self.rules = rules
        self.throttle = Throttle.of(rules)
        self._minutes: dict[datetime, _Minute] = {}

    def observe(self, decision: Decision, now: datetime) -> list[Alert]:
        """Count ``decision`` and return the alerts it raises that the throttle lets out."""
        minute = decision.decided_at.replace(second=0, microsecond=0)
        bucket = self._minutes.setdefault(minute, _Minute())
        bucket.decisions += 1
        bucket.blocked += decision.decision is Verdict.BLOCK
        bucket.reasons.update(r.code for r in decision.reasons if r.points > 0)
        self._forget(minute - timedelta(hours=24))
        found = [*self._per_decision(decision), *self._per_hour(minute, decision)]
        return [
            alert for alert in found if self.throttle.allow(alert.dedupe_key, alert.subject_id, now)
        ]

    def _per_decision(self, decision: Decision) -> list[Alert]:
        rules, alerts = self.rules, []
        listed = [r for r in decision.reasons if r.code == "BLACKLIST_LIST_HIT"]
        severity = top_block_severity(decision.features) if listed else None
        hit_rule = _HIT_RULES.get(severity) if severity is not None else None
        if hit_rule is not None and severity is not None:
            label = severity.value.capitalize()
            message = f"{label} blacklist match detected: {listed[0].detail}"
            alerts.append(_alert(hit_rule, rules, decision, message))
        if decision.latency_ms > rules.slow_processing_ms:
            alerts.append(
                _alert(
                    SLOW_PROCESSING,
                    rules,
                    decision,
                    f"decision {decision.latency_ms} ms after its event "
                    f"(limit {rules.slow_processing_ms} ms)",
                    per_subject=False,
                )
            )
        return alerts

    def _per_hour(self, minute: datetime, decision: Decision) -> list[Alert]:
        rules = self.rules
        hour = [self._minutes[m] for m in self._minutes if minute - m < timedelta(hours=1)]
        decided = sum(b.decisions for b in hour)
        blocked = sum(b.blocked for b in hour)
        alerts = []
        if (
            decided >= rules.fraud_spike_min_decisions
            and blocked / decided > rules.fraud_spike_rate
        ):
            share = f"{blocked / decided:.1%}"
            message = f"{blocked} of {decided} decisions blocked in the last hour ({share})"
            alerts.append(_alert(FRAUD_SPIKE, rules, decision, message, per_subject=False))
        this_hour: Counter[str] = sum((b.reasons for b in hour), Counter())
        day = sum((b.reasons for b in self._minutes.values()), Counter())
        for code in (r.code for r in decision.reasons if r.points > 0):
            average = (day[code] - this_hour[code]) / 23
            count = this_hour[code]
            if count >= rules.unusual_min_count and count > rules.unusual_factor * max(average, 1):
                message = f"{code} fired {count} times in the last hour (usual {average:.1f}/h)"
                alerts.append(
                    _alert(UNUSUAL_PATTERN, rules, decision, message, per_subject=False, key=code)
                )
        return alerts

    def _forget(self, before: datetime) -> None:
        for minute in [m for m in self._minutes if m < before]:
            del self._minutes[minute]


def _alert(
    rule: Rule,
    rules: AlertRules,
    decision: Decision,
    message: str,
    per_subject: bool = True,
    key: str = "",
) -> Alert:
    subject = decision.user_id if per_subject else None
    return _raised(
        rule,
        rules,
        alert_id=f"{rule}-{decision.event_id}",
        message=message,
        event_id=decision.event_id,
        dedupe_key=f"{rule}:{subject or ''}:{key}",
        created_at=decision.decided_at,
        subject_id=subject,
    )


def audit_conflict_alert(conflict: AuditRecord, rules: AlertRules, at: datetime) -> Alert:
    """The alert for a chained ``audit_conflict`` record: a second write of a known audit id
    with other content was refused. Never throttled: each is evidence of its own. Named by
    its place in the audit log (a re-sent alert has the same id)."""
    return _raised(
        AUDIT_CONFLICT,
        rules,
        alert_id=f"{AUDIT_CONFLICT}-{conflict.chain}-{conflict.sequence}",
        message=conflict.details.reason or f"audit conflict at chain {conflict.chain}",
        event_id=f"audit:{conflict.chain}:{conflict.sequence}",
        dedupe_key=conflict.audit_id,
        created_at=at,
    )


def raw_pii_alert(
    topic: str,
    partition: int,
    offset: int,
    fields: tuple[str, ...],
    rules: AlertRules,
    at: datetime,
) -> Alert:
    """The alert for an input record whose ``fields`` held raw personal data where a hash
    belongs. Names the record and the fields, never a value; throttled per topic and fields
    (``dedupe_key``)."""
    named = ", ".join(fields)
    where = f"{topic}:{partition}:{offset}"
    return _raised(
        RAW_PII_IN_HASH,
        rules,
        alert_id=f"{RAW_PII_IN_HASH}-{where}",
        message=f"raw personal data in {named} of the record at {where}, dead-lettered: "
        "its producer sends what it should hash (value not shown)",
        event_id=f"dlq:{where}",
        dedupe_key=f"{RAW_PII_IN_HASH}:{topic}:{named}",
        created_at=at,
    )


def _raised(
    rule: Rule,
    rules: AlertRules,
    *,
    alert_id: str,
    message: str,
    event_id: str,
    dedupe_key: str,
    created_at: datetime,
    subject_id: str | None = None,
) -> Alert:
    """An alert of ``rule`` with its configured severity and channels."""
    trigger = rules.triggers[rule]
    return Alert(
        alert_id=alert_id,
        rule=rule,
        severity=trigger.severity,
        channels=list(trigger.channels),
        message=message,
        subject_id=subject_id,
        event_id=event_id,
        dedupe_key=dedupe_key,
        created_at=created_at,
    )
