"""Alert triggers and the seed's throttling (same alert 5 min, per user 1 h, 100 per hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.rules import load_rules
from engine.alerts import AlertEngine, Throttle, audit_conflict_alert
from engine.audit_log import ChainState, append, content_hash
from schemas.models import Decision, Reason
from tests import factories

RULES = load_rules().alerts
AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _decision(
    n: int,
    verdict: str = "ALLOW",
    reasons: tuple[tuple[str, str], ...] = (),
    latency_ms: int = 10,
    user: str | None = None,
    minute: int = 0,
    features: dict[str, int] | None = None,
) -> Decision:
    at = AT + timedelta(minutes=minute, milliseconds=n)
    return Decision(
        event_id=f"e{n}",
        event_kind="transaction",
        event_type="PIX_TRANSFER",
        subject_type="user",
        subject_id=user or f"u{n}",
        user_id=user or f"u{n}",
        score=50,
        band="MEDIUM",
        decision=verdict,
        reasons=[Reason(code=code, points=10, detail=detail) for code, detail in reasons],
        features=features or {},
        rule_version="v",
        event_occurred_at=at,
        decided_at=at,
        latency_ms=latency_ms,
    )


CRITICAL = (("BLACKLIST_LIST_HIT", "block-list hits: wallet 0x7f36...be1b CRITICAL (OFAC)"),)
CRITICAL_HIT = {"list.block.wallet.CRITICAL.OFAC.0x7f36...be1b": 1}
HIGH = (("BLACKLIST_LIST_HIT", "block-list hits: user ***1 HIGH (MANUAL); ..."),)
HIGH_HITS = {"list.block.user.HIGH.MANUAL.***1": 1, "list.block.email_domain.LOW.MANUAL.x.org": 1}


def test_a_critical_hit_alerts_once_per_user_per_hour() -> None:
    engine = AlertEngine(RULES)

    def hit(n: int, user: str, minutes: int = 0) -> list[str]:
        decision = _decision(n, "BLOCK", CRITICAL, user=user, features=CRITICAL_HIT)
        return [a.rule for a in engine.observe(decision, AT + timedelta(minutes=minutes))]

    first = engine.observe(_decision(1, "BLOCK", CRITICAL, user="ana", features=CRITICAL_HIT), AT)
    assert [a.rule for a in first] == ["blacklist_hit_critical"] and first[0].severity == "CRITICAL"
    assert first[0].channels == ["slack", "email", "pagerduty"]
    assert hit(2, "ana", 10) == [] and hit(3, "bia", 10) == ["blacklist_hit_critical"]
    assert hit(4, "ana", 61) == ["blacklist_hit_critical"]


def test_a_high_hit_alerts_the_team_and_a_low_one_does_not() -> None:
    engine = AlertEngine(RULES)
    high = engine.observe(_decision(1, "BLOCK", HIGH, user="caio", features=HIGH_HITS), AT)
    assert [(a.rule, a.severity) for a in high] == [("blacklist_hit_high", "HIGH")]
    assert high[0].channels == ["slack", "email"] and "High blacklist match" in high[0].message
    low = (("BLACKLIST_LIST_HIT", "block-list hits: email_domain x.org LOW (MANUAL)"),)
    only_low = {"list.block.email_domain.LOW.MANUAL.x.org": 1}
    assert engine.observe(_decision(2, "ALLOW", low, user="dora", features=only_low), AT) == []
    overridden = (("WHITELIST_OVERRIDE", "allow-listed user ***1 overrides ..."),)
    allowed = {**HIGH_HITS, "list.allow.user.LOW.MANUAL.***1": 1}
    assert engine.observe(_decision(3, "ALLOW", overridden, user="eva", features=allowed), AT) == []


def test_slow_processing_alerts_then_waits_five_minutes() -> None:
    engine = AlertEngine(RULES)
    slow = [
        engine.observe(_decision(n, latency_ms=6_000), AT + timedelta(minutes=n)) for n in range(7)
    ]
    assert [len(a) for a in slow] == [1, 0, 0, 0, 0, 1, 0]
    assert "6000 ms" in slow[0][0].message


def test_a_fraud_spike_needs_enough_decisions_and_more_than_five_percent_blocked() -> None:
    engine = AlertEngine(RULES)
    raised = []
    for n in range(200):
        verdict = "BLOCK" if n % 10 == 0 else "ALLOW"  # 10% blocked
        raised += engine.observe(_decision(n, verdict, minute=n // 10), AT)
    spikes = [a for a in raised if a.rule == "fraud_spike"]
    assert len(spikes) == 1 and "blocked in the last hour" in spikes[0].message
    calm = AlertEngine(RULES)
    quiet = [
        calm.observe(_decision(n, "BLOCK" if n % 50 == 0 else "ALLOW"), AT) for n in range(200)
    ]
    assert not any(a.rule == "fraud_spike" for alerts in quiet for a in alerts)


def test_an_unusual_pattern_is_a_code_firing_far_above_its_average() -> None:
    engine = AlertEngine(RULES)
    code = (("GEO_TOR_VPN", "tor"),)
    raised = [a for n in range(25) for a in engine.observe(_decision(n, reasons=code), AT)]
    assert [a.rule for a in raised] == ["unusual_pattern"]
    assert "GEO_TOR_VPN fired 20 times" in raised[0].message


def test_the_global_limit_holds_under_a_burst() -> None:
    throttle = Throttle(timedelta(minutes=5), timedelta(hours=1), 100)
    allowed = sum(throttle.allow(f"k{n}", f"u{n}", AT + timedelta(seconds=n)) for n in range(500))
    assert allowed == 100
    assert throttle.allow("k-late", "u-late", AT + timedelta(hours=1, seconds=1))


def test_a_refused_audit_rewrite_raises_a_critical_alert_named_by_its_place() -> None:
    record = factories.audit_record(
        "list-change 7 by analyst@bank",  # audit ids are not identifiers
        action="list_change",
        details={"reason": "added"},
    )
    rewritten = record.model_copy(
        update={"details": record.details.model_copy(update={"reason": "x"})}
    )
    state = ChainState(chain=1)
    append(state, record, None, AT, 100, 3600)
    (conflict,) = append(state, rewritten, content_hash(record), AT, 100, 3600).records
    alert = audit_conflict_alert(conflict, RULES, AT)
    assert (alert.rule, alert.severity) == ("audit_conflict", "CRITICAL")
    assert alert.alert_id == "audit_conflict-1-1" and alert.event_id == "audit:1:1"
    assert alert.message == f"second write of {record.audit_id} with different content refused"
    assert alert.dedupe_key == conflict.audit_id and alert.channels
