"""Prometheus metrics of every process (prometheus-client), served with its health checks
(``streams.ops``): on ``metrics_host:metrics_port`` when set, and by the API and the sink on
their own HTTP server too.
Names and labels are the only place they are defined; no label ever carries an id or a
personal value (kinds, verdicts, bands, severities, causes only)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("atalaia_events_in_total", "Input events accepted, by kind", ["kind"])
DECISIONS = Counter(
    "atalaia_decisions_total", "Decisions published, by verdict and band", ["verdict", "band"]
)
DEAD_LETTERS = Counter("atalaia_dead_letters_total", "Records sent to the DLQ, by error", ["error"])
RAW_PII_IN_HASH = Counter(
    "atalaia_raw_pii_in_hash_total",
    "Input records holding raw personal data in a *_hash field (dead-lettered), by field",
    ["field"],
)
LATENCY = Histogram(
    "atalaia_decision_latency_seconds",
    "Input broker timestamp to decision",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LIST_HITS = Counter(
    "atalaia_list_hits_total", "Block-list hits in decisions, by severity", ["severity"]
)
MODEL_LATE_EVENTS = Counter(
    "atalaia_model_late_events_total",
    "Transactions older than every model snapshot held (scored with the oldest)",
)
CONSUMER_LAG = Gauge(
    "atalaia_consumer_lag", "Records not yet read, summed over partitions", ["topic"]
)
ALERTS_SENT = Counter("atalaia_alerts_total", "Alerts published, by rule", ["rule"])
SINK_BATCH_ROWS = Histogram(
    "atalaia_sink_batch_rows",
    "Rows per analytics sink batch",
    buckets=(1, 10, 100, 500, 1000, 5000),
)
SINK_FAILURES = Counter("atalaia_sink_failures_total", "Analytics sink batches that failed")
API_REQUESTS = Counter(
    "atalaia_api_requests_total", "API requests answered, by route and status", ["route", "status"]
)
API_SECONDS = Histogram(
    "atalaia_api_request_seconds",
    "API request handling time, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
SYNC_ANSWERS = Counter(
    "atalaia_sync_answers_total",
    "Synchronous decisions answered, by source (engine, timeout_policy) and verdict",
    ["source", "verdict"],
)
LEARNER_INPUTS = Counter(
    "atalaia_learner_inputs_total", "Records the learner read, by kind (decision, label)", ["kind"]
)
LEARNER_SNAPSHOTS = Counter(
    "atalaia_learner_snapshots_total", "Model snapshots published, by model", ["model"]
)
LEARNER_MODEL_LABELS = Gauge(
    "atalaia_learner_model_labels", "Labelled examples a model has learned, by model", ["model"]
)
LEARNER_UNLABELLED = Counter(
    "atalaia_learner_unlabelled_total",
    "Scored decisions forgotten with no label in time, by model",
    ["model"],
)
AUDIT_RECORDS = Counter("atalaia_audit_records_total", "Records appended to the audit chains")
AUDIT_REPEATS = Counter(
    "atalaia_audit_repeats_total", "Audit inputs ignored: the same content under a known id"
)
AUDIT_CONFLICTS = Counter(
    "atalaia_audit_conflicts_total", "Second writes of a known audit id with other content"
)
AUDIT_BATCHES = Counter("atalaia_audit_batches_total", "Merkle batches cut, by cause", ["cause"])
ACCOUNT_FREEZES = Counter(
    "atalaia_account_freezes_total", "Accounts frozen by a decision (a CRITICAL list hit)"
)
FEED_RUNS = Counter(
    "atalaia_feed_runs_total",
    "List feed refreshes, by feed and outcome (ok, failed)",
    ["feed", "outcome"],
)
FEED_CHANGES = Counter(
    "atalaia_feed_entries_changed_total",
    "List entries and names a feed refresh added or removed, by feed and change",
    ["feed", "change"],
)
FEED_LAST_SUCCESS = Gauge(
    "atalaia_feed_last_success_timestamp_seconds",
    "When a feed was last refreshed successfully (Unix time)",
    ["feed"],
)
READY = Gauge("atalaia_ready", "1 when the process's readiness checks pass", ["service"])


@lru_cache(maxsize=1024)
def child_of(metric: Counter | Gauge | Histogram, *values: str) -> Any:
    """The child of ``metric`` for these label values. Cached: the scoring agent counts every
    event, and a ``labels()`` lookup costs more than the increment (labels are bounded enums)."""
    return metric.labels(*values)


LAG_INTERVAL_S = 5.0


async def measure_lag(consumer: Any) -> None:
    """Consumer lag per topic: the high watermark minus the position, over the partitions
    this worker holds (Faust's consumer: ``assignment``, ``highwater``, ``position``)."""
    lag: dict[str, int] = {}
    for partition in consumer.assignment():
        position = await consumer.position(partition)
        if position is not None:
            behind = max(0, consumer.highwater(partition) - position)
            lag[partition.topic] = lag.get(partition.topic, 0) + behind
    for topic, behind in lag.items():
        CONSUMER_LAG.labels(topic).set(behind)
