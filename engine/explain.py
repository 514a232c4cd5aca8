"""Why an event was decided as it was (pure): a decision laid out for an analyst.

Everything comes from the decision itself, as published and stored: its reasons with their
points and details, the features it read (grouped: velocity windows, list hits, blocks,
model inputs, the rest), the rules and model versions, and the list hits and blocks in force
when it was decided. The admin API adds the list entries behind the hits as they are now.

>>> from tests.factories import transaction
>>> from engine.decide import decide_event
>>> from engine.velocity import VelocityState
>>> from config.rules import load_rules
>>> event = transaction(amount_cents=1_000)
>>> outcome = decide_event(VelocityState(), event, load_rules())
>>> explained = explain(event.event_id, outcome.assessment.verdict.value,
...     outcome.assessment.score, outcome.assessment.reasons, outcome.assessment.features)
>>> explained["decision"], explained["points_total"] == sum(
...     r["points"] for r in explained["reasons"])
('ALLOW', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.accounts import ACCOUNT_FROZEN, FROZEN_FEATURE
from engine.admission import CLOCK_SKEW_FEATURE
from engine.features import BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE
from engine.lists import ALLOW_PREFIX, BLOCK_PREFIX, WHITELIST_OVERRIDE, feature_hits
from engine.model_inputs import ML_PREFIX
from schemas.models import Decision, Reason

_BLOCK_FEATURES = (BLOCKED_FEATURE, ENTITY_BLOCKED_FEATURE, FROZEN_FEATURE)
_BLOCK_REASONS = frozenset(
    {
        "BLACKLIST_FRAUD_BLOCK",  # engine.capypay: a fraud block on the user
        "BLACKLIST_ENTITY_BLOCK",  # ... on an entity the event names
        "GIFT_SUBJECT_BLOCKED",  # engine.scoring: a gift action of a blocked subject
        "GIFT_ENTITY_BLOCKED",
        ACCOUNT_FROZEN,
    }
)


def feature_group(name: str) -> str:
    """Which part of the decision a feature belongs to."""
    if name.startswith((BLOCK_PREFIX, ALLOW_PREFIX)):
        return "lists"
    if name in _BLOCK_FEATURES:
        return "blocks"
    if name.startswith(ML_PREFIX):
        return "model"
    if name == CLOCK_SKEW_FEATURE:
        return "event"
    if name.count(".") == 2:  # <metric>.<stat>.<window>
        return "velocity"
    return "patterns"


def list_hits(features: Mapping[str, int]) -> list[dict[str, Any]]:
    """The block- and allow-list hits a decision read, as the features name them (masked)."""
    found = []
    for kind, prefix in (("block", BLOCK_PREFIX), ("allow", ALLOW_PREFIX)):
        for hit in feature_hits(dict(features), prefix):
            found.append(
                {
                    "list": kind,
                    "entity_type": hit.entity_type,
                    "severity": hit.severity.value,
                    "source": hit.source,
                    "masked_value": hit.masked_value,
                    "matches": hit.count,
                }
            )
    return found


def blocks(features: Mapping[str, int], reasons: Sequence[Reason]) -> dict[str, Any]:
    """The fraud blocks and account freeze in force when the event was decided, and the
    reasons they gave."""
    return {
        "subject_blocked": bool(features.get(BLOCKED_FEATURE)),
        "entity_blocked": bool(features.get(ENTITY_BLOCKED_FEATURE)),
        "account_frozen": bool(features.get(FROZEN_FEATURE)),
        "reasons": [r.code for r in reasons if r.code in _BLOCK_REASONS],
    }


def explain(
    event_id: str,
    verdict: str,
    score: int,
    reasons: Sequence[Reason],
    features: Mapping[str, int],
) -> dict[str, Any]:
    """The verdict, every reason (most points first, as they added up), the features by
    group, the list hits and the blocks."""
    grouped: dict[str, dict[str, int]] = {}
    for name in sorted(features):
        grouped.setdefault(feature_group(name), {})[name] = features[name]
    return {
        "event_id": event_id,
        "decision": verdict,
        "score": score,
        "points_total": sum(r.points for r in reasons),
        "reasons": [
            {"code": r.code, "points": r.points, "detail": r.detail}
            for r in sorted(reasons, key=lambda r: -r.points)
        ],
        "allow_list_override": any(r.code == WHITELIST_OVERRIDE for r in reasons),
        "list_hits": list_hits(features),
        "blocks": blocks(features, reasons),
        "features": grouped,
    }


def explain_decision(decision: Decision) -> dict[str, Any]:
    """:func:`explain` of a published decision, with what it says of itself: the event, the
    rules and model versions, the actions asked, the timings."""
    return {
        **explain(
            decision.event_id,
            decision.decision.value,
            decision.score,
            decision.reasons,
            decision.features,
        ),
        "event_kind": decision.event_kind.value,
        "event_type": decision.event_type,
        "subject": {"type": decision.subject_type.value, "id": decision.subject_id},
        "user_id": decision.user_id,
        "band": decision.band.value,
        "actions": [a.value for a in decision.actions],
        "rule_version": decision.rule_version,
        "model": (
            {
                "version": decision.model_version,
                "probability": decision.model_probability,
                "anomaly": decision.model_anomaly,
            }
            if decision.model_version
            else None
        ),
        "event_occurred_at": decision.event_occurred_at.isoformat(),
        "decided_at": decision.decided_at.isoformat(),
        "latency_ms": decision.latency_ms,
    }


def render_text(explained: Mapping[str, Any]) -> str:
    """An explanation as ``atalaia explain`` prints it."""
    lines = [
        f"event {explained['event_id']} ({explained['event_kind']} {explained['event_type']}, "
        f"{explained['subject']['type']} {explained['subject']['id']})",
        f"decision {explained['decision']}  score {explained['score']}  "
        f"band {explained['band']}  rules {explained['rule_version']}",
    ]
    model = explained.get("model")
    if model:
        lines.append(
            f"model {model['version']}  probability {model['probability']}  "
            f"anomaly {model['anomaly']}"
        )
    lines.append(
        f"occurred {explained['event_occurred_at']}  decided {explained['decided_at']}  "
        f"({explained['latency_ms']} ms)"
    )
    if explained["actions"]:
        lines.append(f"actions {', '.join(explained['actions'])}")
    lines += ["", "reasons (points: why)"]
    lines += [f"  {r['points']:>4}  {r['code']}: {r['detail']}" for r in explained["reasons"]] or [
        "  (none)"
    ]
    lines.append(f"  ----  {explained['points_total']} points (score capped to 0..100)")
    if explained["list_hits"]:
        lines += ["", "list hits"]
        for hit in explained["list_hits"]:
            entry = hit.get("entry")
            now = (
                f"  [{entry['entry_id']}, now {entry['status']}: {entry['reason']}]"
                if entry
                else ""
            )
            lines.append(
                f"  {hit['list']} {hit['entity_type']} {hit['masked_value']} "
                f"{hit['severity']} ({hit['source']}) x{hit['matches']}{now}"
            )
    held = explained["blocks"]
    in_force = [k for k in ("subject_blocked", "entity_blocked", "account_frozen") if held[k]]
    lines += ["", f"blocks in force  {', '.join(in_force) or 'none'}"]
    account = explained.get("account")
    if account:
        state = "frozen" if account["frozen"] else "not frozen"
        lines.append(f"account now      {state} ({account['reason']}, by {account['changed_by']})")
    for group, values in explained["features"].items():
        lines += ["", f"features: {group}"]
        lines += [f"  {name} = {value}" for name, value in values.items()]
    return "\n".join(lines)
