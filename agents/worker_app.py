"""The worker's Faust app: the scoring and case agents, the views every worker follows, the
Redis mirrors and the network lists, wired onto the generic app of ``streams.app``."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

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
from streams.app import AtalaiaApp, new_app, serve_ops_of, utc_now
from streams.live_config import StartingRules, register_config_follower
from streams.ops import Check, Readiness
from streams.topics import Topics
from streams.views import follow_into

log = logging.getLogger(__name__)
M = TypeVar("M", bound=WireModel)


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
