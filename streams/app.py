"""The Faust application: settings + rules in, topics declared and agents wired."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
import uvloop
from redis.asyncio import Redis

from agents.block_mirror import register_block_mirror
from agents.cases import register_cases
from agents.counter_mirror import register_counter_mirror
from agents.scoring import SharedViews, register_scoring
from config.rules import LiveRules, RuleSet
from config.settings import Settings
from engine.frozen_model import FrozenModel
from engine.learning import (
    BATCH,
    CHALLENGER,
    LoadedModel,
    ModelError,
    ScoresFeatures,
    open_model,
    open_trees,
    tree_scorer,
)
from schemas.codec import WireCodec
from schemas.models import FraudBlock, ListEntry, ModelSnapshot
from schemas.models import KnownFrauds as KnownFraudsRecord
from sinks.redis_blocks import RedisBlockMirror
from sinks.redis_counters import RedisCounterMirror
from streams.live_config import StartingRules, register_config_follower
from streams.log_limits import limit_client_repeats
from streams.metrics import LAG_INTERVAL_S, measure_lag, serve_metrics
from streams.side_producer import SideProducer
from streams.topics import Topics
from streams.transport import Transport
from streams.views import follow_into

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class AtalaiaApp(faust.App):
    """A Faust app whose consumer fetch wait comes from the broker profile."""

    fetch_max_wait_ms: int = 1500
    correct_end_offsets: bool = False
    bootstrap_servers: str
    side_producer: SideProducer

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        await super().on_stop()  # flushes both producers
        await self.side_producer.stop()


def collect_garbage_seldom(young_objects: int) -> None:
    """Fewer, shorter cyclic garbage collections in a long-running process: what was loaded
    at start (Faust, the model libraries, the rules) is frozen out of every collection, and
    the youngest generation is collected every ``young_objects`` allocations instead of 700.
    In a worker the many cached window states made every full collection long: 2 of ~180 ms
    per 11,000 paced events, 50 us of collection per event (after: none, 20-33 ms at most,
    7-11 us; README). Reference counting frees most garbage; only cycles wait longer."""
    gc.freeze()
    if young_objects:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_objects, middle, old)


def run_until_stopped(app: faust.App, settings: Settings) -> None:
    """Run ``app`` (made by ``new_app``, so on uvloop) as a Faust worker until
    SIGINT/SIGTERM."""
    limit_client_repeats(settings.log_repeat_interval_s)
    collect_garbage_seldom(settings.gc_young_objects)
    # Faust's default "warn" level leaves the root logger at DEBUG, which costs ~25%.
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()


def serve_metrics_of(app: faust.App, settings: Settings) -> None:
    """With ``metrics_port`` set, serve this process's metrics and measure its consumer lag."""
    if settings.metrics_port is None:
        return
    serve_metrics(settings.metrics_port)

    async def lag() -> None:
        await measure_lag(app.consumer)

    app.timer(LAG_INTERVAL_S)(lag)


def new_app(settings: Settings, app_id: str) -> AtalaiaApp:
    """A Faust app (consumer group ``app_id``) with the broker profile's tuning and the side
    producer the agents send through; agents are registered by the caller.
    The app runs on uvloop. The policy is set here, before the app resolves its loop: Faust
    keeps the first loop it resolves on a thread, and a policy set later is ignored."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    profile = settings.broker_profile
    servers = ";".join(s.strip() for s in settings.bootstrap_servers.split(","))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = AtalaiaApp(
        app_id,
        broker=f"kafka://{servers}",
        store=settings.store,
        # Our codec does all (de)serialisation: Faust must hand over bytes untouched, or it
        # silently drops records its default JSON serializer cannot parse.
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(settings.data_dir / app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=profile.session_timeout_s,
        broker_heartbeat_interval=profile.heartbeat_interval_s,
        broker_rebalance_timeout=profile.rebalance_timeout_s,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
    )
    app.fetch_max_wait_ms = profile.fetch_max_wait_ms
    app.correct_end_offsets = profile.correct_end_offsets
    app.bootstrap_servers = settings.bootstrap_servers
    app.side_producer = SideProducer(settings.bootstrap_servers)
    return app


def build_app(
    settings: Settings,
    start: StartingRules,
    clock: Callable[[], datetime] = utc_now,
    challenger: RuleSet | None = None,
) -> AtalaiaApp:
    """The worker's app; rules start from ``start`` and then follow the config topic; a
    ``challenger`` is scored in shadow beside them."""
    app = new_app(settings, settings.app_id)
    topics = Topics(settings.topic_prefix)
    codec = WireCodec()
    live = LiveRules(start.rules)
    hash_key = settings.pii_hash_key.get_secret_value().encode()
    views = SharedViews.starting(start.rules, hash_key)
    window_s = settings.batch_window_ms / 1000
    register_scoring(
        app,
        topics,
        codec,
        live,
        clock,
        settings.partitions,
        settings.batch_size,
        window_s,
        views,
        hash_key,
        challenger,
        settings.state_cache_keys,
    )

    async def follow_entity_blocks() -> None:
        await follow_into(
            settings.bootstrap_servers,
            topics.fraud_blocks,
            FraudBlock,
            views.blocks.apply,
            views.blocks_loaded.set,
        )

    async def follow_lists() -> None:
        await follow_into(
            settings.bootstrap_servers,
            topics.lists,
            ListEntry,
            views.lists.apply,
            views.lists_loaded.set,
        )

    def take_snapshot(snapshot: ModelSnapshot) -> None:
        shelf = views.models.get(snapshot.name)
        if shelf is None:
            log.warning("model snapshot %s has an unknown name", snapshot.version)
            return
        rules = challenger if snapshot.name == CHALLENGER else live.current
        if rules is None:
            return  # a challenger's snapshot where none is scored in shadow
        known_until = int(snapshot.known_until.timestamp() * 1000)
        blob, signature = snapshot.blob, snapshot.signature
        try:
            if snapshot.name == BATCH:
                trees = open_trees(blob, signature, hash_key, rules.model.batch.family)
                scorer: ScoresFeatures = tree_scorer(trees, rules.model)
            else:
                scorer = FrozenModel(open_model(blob, signature, hash_key, rules.model.family))
        except (ModelError, ValueError) as exc:
            log.warning("model snapshot %s refused: %s", snapshot.version, exc)
            return
        shelf.add(LoadedModel(snapshot.version, known_until, scorer))

    async def follow_models() -> None:
        await follow_into(
            settings.bootstrap_servers,
            topics.models,
            ModelSnapshot,
            take_snapshot,
            views.models_loaded.set,
        )

    async def follow_known_frauds() -> None:
        await follow_into(
            settings.bootstrap_servers,
            topics.known_frauds,
            KnownFraudsRecord,
            lambda record: views.known_frauds.replace(record.entity_key, record.frauds),
            views.known_frauds_loaded.set,
        )

    register_cases(app, topics, codec, settings.partitions)
    serve_metrics_of(app, settings)
    app.task(follow_entity_blocks)
    app.task(follow_lists)
    app.task(follow_models)
    app.task(follow_known_frauds)
    register_config_follower(app, settings, live, codec, start.positions)
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        blocks = RedisBlockMirror(redis, settings.topic_prefix)
        register_block_mirror(app, topics, codec, blocks, clock, settings.batch_size, window_s)
        counters = RedisCounterMirror(redis, settings.topic_prefix)
        register_counter_mirror(
            app, topics, codec, counters, live, clock, settings.batch_size, window_s
        )
    return app
