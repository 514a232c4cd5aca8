"""A plain fraud rule in Quix Streams: the reference row of ``bench.quix_rules``.

Run by ``bench.quix_rules`` with an interpreter of its own (Quix Streams pins versions of
pydantic that the engine does not run with), so this file imports Quix and the standard
library only. Input: JSON transactions keyed by customer; per customer a 1 h tumbling window
(count, sum), re-keyed by terminal (Quix keeps state by message key) for a 1 day tumbling
window (count), then a four-line rule, as a stateful rule engine written plainly in Quix.
Windows use event time; the terminal window's grace is 30 days because the re-keyed stream
interleaves the input partitions and Quix drops events later than the grace.

    <quix venv>/bin/python bench/quix_app.py   (env QUIX_BOOTSTRAP, QUIX_INPUT, QUIX_OUTPUT,
                                                 QUIX_GROUP, QUIX_STATE_DIR)
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Last, Sum

BIG_AMOUNT_CENTS = 22_000  # the handbook's first fraud scenario: amounts over R$ 220
CUSTOMER_HOUR_MAX = 3
CUSTOMER_HOUR_SUM_MAX_CENTS = 50_000
TERMINAL_DAY_MAX = 5
# The consumer settings Tansu needs (docs/configuration.md, broker profiles).
TANSU = {
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 2_500,
    "max.poll.interval.ms": 10_000,
    "fetch.wait.max.ms": 10,
}


def decide(amount_cents: int, customer_hour: int, customer_sum: int, terminal_day: int) -> str:
    score = 50 * (amount_cents > BIG_AMOUNT_CENTS)
    score += 20 * (customer_hour > CUSTOMER_HOUR_MAX)
    score += 15 * (customer_sum > CUSTOMER_HOUR_SUM_MAX_CENTS)
    score += 15 * (terminal_day > TERMINAL_DAY_MAX)
    return "BLOCK" if score >= 50 else "REVIEW" if score >= 20 else "ALLOW"


def event_time(value: dict[str, Any], headers: Any, timestamp: float, kind: Any) -> int:
    value["published_ms"] = timestamp  # the record's broker timestamp, for the latency
    return int(value["ts_ms"])


def to_decision(window: dict[str, Any]) -> dict[str, Any]:
    event = window["last"]
    verdict = decide(
        event["amount_cents"], event["customer_hour"], event["customer_sum"], window["count"]
    )
    return {
        "event_id": event["event_id"],
        "decision": verdict,
        "published_ms": event["published_ms"],
        "decided_ms": int(time.time() * 1000),
    }


def main() -> None:
    app = Application(
        broker_address=os.environ["QUIX_BOOTSTRAP"],
        consumer_group=os.environ["QUIX_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=os.environ["QUIX_STATE_DIR"],
        loglevel="WARNING",
        consumer_extra_config=TANSU,
    )
    source = app.topic(
        os.environ["QUIX_INPUT"],
        value_deserializer="json",
        key_deserializer="str",
        timestamp_extractor=event_time,
    )
    sink = app.topic(os.environ["QUIX_OUTPUT"], value_serializer="json", key_serializer="json")
    frame = app.dataframe(source)
    frame = (
        frame.tumbling_window(timedelta(hours=1), name="customer_1h")
        .agg(count=Count(), sum=Sum("amount_cents"), last=Last())
        .current()
    )
    frame = frame.apply(
        lambda w: {**w["last"], "customer_hour": w["count"], "customer_sum": w["sum"]}
    )
    frame = frame.group_by("terminal_id", name="by_terminal")
    frame = (
        frame.tumbling_window(timedelta(days=1), grace_ms=timedelta(days=30), name="terminal_1d")
        .agg(count=Count(), last=Last())
        .current()
    )
    frame.apply(to_decision).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
