"""Which partition owns a key: the Kafka default partitioner (murmur2), as producers use it.

The scoring agent decides an event in place only when it arrived on the partition that owns
its subject; anything else is re-routed there first, so one partition owns each subject's state.

>>> from aiokafka.partitioner import DefaultPartitioner
>>> owner_partition(b"user:u1", 3) == DefaultPartitioner()(b"user:u1", [0, 1, 2], [0, 1, 2])
True
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65_536)
def owner_partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
