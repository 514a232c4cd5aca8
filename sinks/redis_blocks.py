"""Mirror of active fraud blocks in Redis, for callers that cannot wait for Kafka.

Key ``<prefix>:block:<entity_type>:<entity_id>``, value the reason and expiry as JSON, expiring
in Redis exactly when the block does (``PXAT``). Writes are batched in one pipeline per batch.
A block only ever replaces one that ends sooner, so re-delivered or reordered blocks never
shorten a block in force.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis

from schemas.models import FraudBlock

# Set KEYS[1] to ARGV[1] expiring at ARGV[2] (epoch ms) unless it already holds a block that
# ends at or after that.
_SET_IF_LONGER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and tonumber(doc['expires_at_ms']) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""


def block_key(prefix: str, entity_type: str, entity_id: str) -> str:
    return f"{prefix}:block:{entity_type}:{entity_id}"


class RedisBlockMirror:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._set_if_longer = client.register_script(_SET_IF_LONGER)

    async def write(self, blocks: Sequence[FraudBlock], now_ms: int) -> int:
        """Store the blocks still in force at ``now_ms``; returns how many were written."""
        pipeline = self.client.pipeline(transaction=False)
        written = 0
        for block in blocks:
            expires_ms = int(block.expires_at.timestamp() * 1000)
            if expires_ms <= now_ms:
                continue  # already over: nothing for a caller to check
            value = json.dumps(
                {"reason": block.reason, "expires_at_ms": expires_ms, "event_id": block.event_id}
            )
            key = block_key(self.prefix, block.entity_type.value, block.entity_id)
            await self._set_if_longer(keys=[key], args=[value, expires_ms], client=pipeline)
            written += 1
        if written:
            await pipeline.execute()
        return written

    async def active_block(self, entity_type: str, entity_id: str) -> dict[str, object] | None:
        """What a synchronous caller checks: the block in force, or None."""
        raw = await self.client.get(block_key(self.prefix, entity_type, entity_id))
        return json.loads(raw) if raw else None
