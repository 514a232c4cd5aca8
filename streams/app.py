"""The generic Faust application of every long-running process: the app and its transport,
ops endpoints, garbage collection and running until stopped (the worker wires its agents
onto it in ``agents.worker_app``)."""

from __future__ import annotations

import asyncio
import gc
import signal
from datetime import UTC, datetime
from typing import Any

import faust
import uvloop

from config.settings import Settings
from schemas.codec import WireCodec
from streams.alignment import TimeOf, event_time
from streams.log_limits import limit_client_repeats
from streams.logs import faust_logging_config
from streams.metrics import LAG_INTERVAL_S, measure_lag
from streams.ops import REFRESH_S, Check, Readiness, serve_ops
from streams.side_producer import SideProducer
from streams.stopping import exit_unless_stopped_within
from streams.topics import Topics
from streams.transport import Transport


def utc_now() -> datetime:
    return datetime.now(UTC)


class AtalaiaApp(faust.App):
    """A Faust app whose consumer fetch wait comes from the broker profile."""

    fetch_max_wait_ms: int = 1500
    correct_end_offsets: bool = False
    bootstrap_servers: str
    side_producer: SideProducer
    aligned_topics: frozenset[str] = frozenset()
    """Topics whose fetched records are handed out in event-time order (``streams.alignment``)."""
    time_of: TimeOf

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

    def __init__(self, app: faust.App, *, stop_grace_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.stop_grace_s = stop_grace_s

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(STOPPED_LOOP_GRACE_S)

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        """The first stop signal also sets the deadline the stop must finish by."""
        if not self._signal_stop_time:
            exit_unless_stopped_within(self.stop_grace_s, asyncio.get_event_loop())
        super()._schedule_shutdown(sig)


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
        stop_grace_s=settings.stop_grace_s,
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
    contracts = Topics(settings.topic_prefix).input_models()
    app.aligned_topics = frozenset(contracts)
    app.time_of = event_time(WireCodec(), contracts)
    app.bootstrap_servers = settings.bootstrap_servers
    app.side_producer = SideProducer(settings.bootstrap_servers)
    return app
