"""Mirror of rate-limit counters in Redis, for callers that cannot wait for Kafka.

Every decision carries its subject's window values (``features``). The configured ones are
stored under ``<prefix>:count:<subject_type>:<subject_id>:<feature>`` as JSON
``{"value": N, "as_of_ms": T}``: the value as of the subject's latest event, expiring when the
window has passed since that event (after that the count is certainly zero). A value only
replaces one as of an earlier or equal time, so re-delivered or reordered decisions never
roll a counter back. Writes are batched in one pipeline per batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from config.rules import feature_window
from schemas.models import Decision

# Set KEYS[1] to ARGV[1] expiring at ARGV[3] (epoch ms) unless it holds a value as of a later
# time than ARGV[2].
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and tonumber(doc['as_of_ms']) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
return 1
"""


def counter_key(prefix: str, subject_type: str, subject_id: str, feature: str) -> str:
    return f"{prefix}:count:{subject_type}:{subject_id}:{feature}"


class RedisCounterMirror:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._set_if_newer = client.register_script(_SET_IF_NEWER)

    async def write(
        self,
        decisions: Sequence[Decision],
        mirrored: frozenset[str],
        windows: Mapping[str, int],
        now_ms: int,
    ) -> int:
        """Store the mirrored features of each decision; returns how many were written."""
        pipeline = self.client.pipeline(transaction=False)
        written = 0
        for decision in decisions:
            as_of_ms = int(decision.event_occurred_at.timestamp() * 1000)
            for feature in mirrored.intersection(decision.features):
                expires_ms = as_of_ms + windows[feature_window(feature)] * 1000
                if expires_ms <= now_ms:
                    continue  # the window has passed: nothing left to count
                key = counter_key(
                    self.prefix, decision.subject_type.value, decision.subject_id, feature
                )
                value = json.dumps({"value": decision.features[feature], "as_of_ms": as_of_ms})
                await self._set_if_newer(
                    keys=[key], args=[value, as_of_ms, expires_ms], client=pipeline
                )
                written += 1
        if written:
            await pipeline.execute()
        return written

    async def counter(
        self, subject_type: str, subject_id: str, feature: str
    ) -> dict[str, int] | None:
        """What a synchronous caller reads: the value and the event time it is as of."""
        raw = await self.client.get(counter_key(self.prefix, subject_type, subject_id, feature))
        return json.loads(raw) if raw else None
