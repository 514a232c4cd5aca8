"""``atalaia tail``: decisions as they arrive, one readable line each, re-deliveries folded."""

from __future__ import annotations

import sys
from contextlib import aclosing
from typing import TextIO

from engine.decisions import DecisionLedger, Seen
from schemas.codec import DecodeError, WireCodec
from schemas.models import Decision, Verdict
from streams.reader import read_topics

_VERDICT_MARK = {Verdict.ALLOW: "  ALLOW", Verdict.REVIEW: " REVIEW", Verdict.BLOCK: "  BLOCK"}


def format_decision(decision: Decision) -> str:
    """One line for a person: time, verdict, band, score, subject, event, reasons.

    >>> d = Decision(event_id="e1", event_kind="gift", event_type="payment_failed",
    ...     subject_type="user", subject_id="u1", score=20, band="LOW", decision="ALLOW",
    ...     reasons=[{"code": "GIFT_PIX_FAILED", "points": 20, "detail": "PIX failed"}],
    ...     rule_version="1", event_occurred_at=0, decided_at=1_700_000_000_000, latency_ms=4)
    >>> format_decision(d)
    '22:13:20.000   ALLOW LOW       20  user:u1  gift/payment_failed e1  4ms  GIFT_PIX_FAILED+20'
    """
    reasons = ", ".join(f"{r.code}{r.points:+d}" for r in decision.reasons) or "-"
    actions = f"  [{', '.join(a.value for a in decision.actions)}]" if decision.actions else ""
    return (
        f"{decision.decided_at:%H:%M:%S.%f}"[:-3]
        + f" {_VERDICT_MARK[decision.decision]} {decision.band.value:<8} {decision.score:>3}"
        f"  {decision.subject_type.value}:{decision.subject_id}"
        f"  {decision.event_kind.value}/{decision.event_type} {decision.event_id}"
        f"  {decision.latency_ms}ms  {reasons}{actions}"
    )


async def tail(
    bootstrap_servers: str,
    topic: str,
    from_beginning: bool,
    limit: int | None,
    idle_timeout_s: float | None,
    out: TextIO = sys.stdout,
) -> DecisionLedger:
    codec = WireCodec()
    ledger = DecisionLedger()
    shown = 0
    records = read_topics(bootstrap_servers, [topic], from_beginning, idle_timeout_s)
    async with aclosing(records):
        async for record in records:
            try:
                decision = codec.decode(record.value, (Decision,))
            except DecodeError as exc:
                print(f"unreadable record at {record.partition}@{record.offset}: {exc}", file=out)
                continue
            seen = ledger.observe(decision)
            if seen is Seen.DUPLICATE:
                continue
            prefix = "CONFLICT " if seen is Seen.CONFLICT else ""
            print(prefix + format_decision(decision), file=out, flush=True)
            shown += 1
            if limit is not None and shown >= limit:
                break
    return ledger
