"""Create the engine's topics (partitions, compaction) before any client touches them.

Run before the worker subscribes: a broker that auto-creates topics on first use would
otherwise create them with its own defaults and without ``cleanup.policy=compact``.
"""

from __future__ import annotations

from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.topics import Topics


async def ensure_topics(
    bootstrap_servers: str, topics: Topics, partitions: int, replication_factor: int
) -> list[str]:
    """Create whichever of ``topics`` do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs=spec.config,
            )
            for spec in topics.specs()
            if spec.name not in existing
        ]
        if missing:
            # Another worker may create them between our list and create: that is fine.
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
