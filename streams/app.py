"""The Faust application: settings + rules in, topics declared and agents wired."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import uvloop
from redis.asyncio import Redis

from agents.block_mirror import register_block_mirror
from agents.cases import register_cases
from agents.counter_mirror import register_counter_mirror
from agents.networks import register_network_lists
from agents.scoring import SharedViews, register_scoring
from config.rules import LiveRules, RuleSet
from config.settings import Settings
from engine.frozen_model import FrozenModel
from engine.learning import (
    BATCH,
    CHALLENGER,
    CHAMPION,
    FLOW_MODELS,
    LoadedModel,
    ModelError,
    ScoresFeatures,
    open_model,
    open_trees,
    tree_scorer,
)
from schemas.codec import WireCodec
from schemas.models import AccountState, FraudBlock, ListEntry, ModelSnapshot, WireModel
from schemas.models import KnownFrauds as KnownFraudsRecord
from sinks.redis_blocks import RedisBlockMirror
from sinks.redis_counters import RedisCounterMirror
from streams.live_config import StartingRules, register_config_follower
from streams.log_limits import limit_client_repeats
from streams.logs import faust_logging_config
from streams.metrics import LAG_INTERVAL_S, measure_lag
from streams.ops import REFRESH_S, Check, Readiness, serve_ops
from streams.side_producer import SideProducer
from streams.topics import Topics
from streams.transport import Transport
from streams.views import follow_into

log = logging.getLogger(__name__)
M = TypeVar("M", bound=WireModel)


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
    7-11 us; docs/adr/0006-worker-process-tuning.md). Reference counting frees most garbage;
    only cycles wait longer."""
    gc.freeze()
    if young_objects:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_objects, middle, old)


class Worker(faust.Worker):
    """A Faust worker whose last step of stopping, once every service has stopped and every
    future is gathered, waits 0.1 s for the loop's pending callbacks instead of mode's fixed
    1 s: a stopped process ends within a second of SIGTERM. (Named as Faust's: its log lines
    say ``[^Worker]``, which operators and tests look for.)"""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(STOPPED_LOOP_GRACE_S)


STOPPED_LOOP_GRACE_S = 0.1


def run_until_stopped(app: faust.App, settings: Settings, service: str) -> None:
    """Run ``app`` (made by ``new_app``, so on uvloop) as a Faust worker until
    SIGINT/SIGTERM; ``service`` names the process in JSON log lines."""
    limit_client_repeats(settings.log_repeat_interval_s)
    collect_garbage_seldom(settings.gc_young_objects)
    json_logs = faust_logging_config(settings, service)
    # Faust's default "warn" level leaves the root logger at DEBUG, which costs ~25%.
    worker = Worker(
        app,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        logging_config=json_logs,
        quiet=json_logs is not None,  # no banner: every line is JSON
    )
    worker.execute_from_commandline()


def joined(app: faust.App) -> Check:
    """Whether the app has its partitions: in its consumer group, tables recovered."""
    if app.rebalancing:
        return Check(False, "rebalancing")
    if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return Check(False, "joining the consumer group, recovering tables")
    actives = app.assignor.assigned_actives()  # not the tables' standby replicas
    partitions = len({tp.partition for tp in actives})
    return Check(True, f"{partitions} partitions assigned ({len(actives)} topic partitions)")


def serve_ops_of(app: faust.App, settings: Settings, readiness: Readiness) -> None:
    """Check the app's partitions (with whatever else ``readiness`` holds) every second on
    its loop, measure its consumer lag, and with ``metrics_port`` set serve ``/metrics``,
    ``/healthz`` and ``/readyz`` there."""
    readiness.check("partitions", lambda: joined(app))
    if settings.metrics_port is not None:
        serve_ops(settings.metrics_host, settings.metrics_port, readiness)

    async def refresh() -> None:
        readiness.refresh()

    async def lag() -> None:
        await measure_lag(app.consumer)

    app.timer(REFRESH_S)(refresh)
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


def views_check(views: SharedViews) -> Check:
    """Whether every followed view has read what its topic held when the worker started."""
    loading = [name for name, loaded in views.loading().items() if not loaded.is_set()]
    if loading:
        return Check(False, f"loading {', '.join(loading)}")
    frozen = len(views.accounts.frozen)
    return Check(True, f"caught up ({len(views.lists.entries())} list entries, {frozen} frozen)")


def model_check(views: SharedViews, rules: RuleSet, refused: Counter[str]) -> Check:
    """Whether the champion model the rules score with is loaded. Until the learner has
    published one the rules score alone (ready); snapshots that were all refused (another
    hash key, another model family) are not."""
    if not rules.model.enabled:
        return Check(True, "off: the rules score alone")
    if not views.models_loaded.is_set():
        return Check(False, "reading the model snapshots")
    model, _ = views.models[CHAMPION].pick(2**62)  # the newest snapshot held
    if model is not None:
        return Check(True, f"champion {model.version}")
    if refused[CHAMPION]:
        return Check(False, f"{refused[CHAMPION]} champion snapshots refused (see the log)")
    return Check(True, "no snapshot published yet: the rules score alone")


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
    views.networks.tor_exits, views.networks.ranges = (
        settings.tor_exit_list,
        settings.anonymous_ip_ranges,
    )
    register_network_lists(app, views.networks, settings.network_lists_refresh_seconds)
    readiness = Readiness("worker")
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

    refused: Counter[str] = Counter()

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
            elif snapshot.name in FLOW_MODELS.values():  # sparse inputs: scored as learned
                scorer = open_model(blob, signature, hash_key, rules.model.flows.family)
            else:
                scorer = FrozenModel(open_model(blob, signature, hash_key, rules.model.family))
        except (ModelError, ValueError) as exc:
            log.warning("model snapshot %s refused: %s", snapshot.version, exc)
            refused[snapshot.name] += 1
            return
        shelf.add(LoadedModel(snapshot.version, known_until, scorer))

    def follow(
        topic: str, model: type[M], apply: Callable[[M], None], loaded: asyncio.Event
    ) -> None:
        """Keep a view of ``topic`` (a task of the app); ``loaded`` once it has caught up."""

        async def run() -> None:
            await follow_into(settings.bootstrap_servers, topic, model, apply, loaded.set)

        run.__name__ = f"follow {topic}"
        app.task(run)

    register_cases(app, topics, codec, settings.partitions)
    readiness.check("views", lambda: views_check(views))
    readiness.check("model", lambda: model_check(views, live.current, refused))
    readiness.check("rules", lambda: Check(True, f"version {live.current.version}"))
    serve_ops_of(app, settings, readiness)
    follow(topics.account_states, AccountState, views.accounts.apply, views.accounts_loaded)
    follow(topics.fraud_blocks, FraudBlock, views.blocks.apply, views.blocks_loaded)
    follow(topics.lists, ListEntry, views.lists.apply, views.lists_loaded)
    follow(topics.models, ModelSnapshot, take_snapshot, views.models_loaded)
    follow(
        topics.known_frauds,
        KnownFraudsRecord,
        lambda record: views.known_frauds.replace(record.entity_key, record.frauds),
        views.known_frauds_loaded,
    )
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
