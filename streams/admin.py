"""Create the engine's topics (partitions, compaction) before any client touches them.

Run before the worker subscribes: a broker that auto-creates topics on first use would
otherwise create them with its own defaults and without ``cleanup.policy=compact``.
"""

from __future__ import annotations

from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from config.settings import Settings
from streams.topics import Topics


async def ensure_topics(settings: Settings) -> list[str]:
    """Create whichever of the deployment's topics do not exist yet; returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=spec.config,
            )
            for spec in Topics(settings.topic_prefix).specs()
            if spec.name not in existing
        ]
        if missing:
            # Another worker may create them between our list and create: that is fine.
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
