"""What a synchronous caller is told when the engine's decision does not come in time (pure).

The configured policy per event kind answers ALLOW (fail-open) or BLOCK (fail-closed), and
says so in its reasons; an event whose subject, IP or device is under an active fraud block
is BLOCK whatever the policy, since the block is known without the engine.

>>> from config.rules import load_rules
>>> from tests.factories import login
>>> answer = late_answer(login(), load_rules().sync, None, "no decision within 800 ms")
>>> answer.verdict.value, [r.code for r in answer.reasons]
('ALLOW', ['SYNC_TIMEOUT_FAIL_OPEN'])
"""

from __future__ import annotations

from dataclasses import dataclass

from config.rules import SyncPolicy
from schemas.models import EVENT_KIND_OF, InputEvent, Reason, Verdict


@dataclass(frozen=True)
class ActiveBlock:
    """A fraud block in force on the event's subject, IP or device, as the Redis mirror
    holds it."""

    reason: str
    expires_at_ms: int


@dataclass(frozen=True)
class LateAnswer:
    verdict: Verdict
    policy: str
    reasons: tuple[Reason, ...]


def late_answer(
    event: InputEvent, policy: SyncPolicy, block: ActiveBlock | None, cause: str
) -> LateAnswer:
    chosen = policy.on_timeout[EVENT_KIND_OF[type(event)]]
    verdict = Verdict.ALLOW if chosen == "fail_open" else Verdict.BLOCK
    reasons = [
        Reason(
            code=f"SYNC_TIMEOUT_{chosen.upper()}",
            points=0,
            detail=f"{cause}: {chosen.replace('_', '-')} policy; the engine's decision "
            "will still be published",
        )
    ]
    if block is not None:
        verdict = Verdict.BLOCK
        reasons.append(
            Reason(
                code="SYNC_ACTIVE_BLOCK",
                points=0,
                detail=f"subject, IP or device under an active fraud block ({block.reason}) "
                f"until epoch ms {block.expires_at_ms}",
            )
        )
    return LateAnswer(verdict, chosen, tuple(reasons))
