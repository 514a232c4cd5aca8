"""Broker profiles: every broker-specific client setting lives here, nowhere else.

``tansu`` carries the workarounds measured on the embedded Tansu broker (docs/configuration.md,
"Broker profiles"); ``tansu-test`` is the same with a short group session, for the test suite
(also for the demos it runs): Tansu answers a group join only after half the session
timeout, so a new worker is ready seconds sooner, and a process that stops heartbeating loses
its partitions after 2 s instead of 10. ``kafka`` keeps Faust's defaults, right for Apache
Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

ProfileName = Literal["tansu", "tansu-test", "kafka"]


@dataclass(frozen=True)
class BrokerProfile:
    name: ProfileName
    # Tansu answers a group join only after half the session timeout: keep it short there.
    session_timeout_s: float
    heartbeat_interval_s: float
    rebalance_timeout_s: float
    # Tansu holds an empty fetch for the whole wait even when data arrives: latency tracks it.
    fetch_max_wait_ms: int
    # Tansu reports a wrong end offset for multi-record batches, which breaks changelog
    # recovery: correct the end offsets recovery reads (streams.end_offsets).
    correct_end_offsets: bool


_TANSU = BrokerProfile(
    name="tansu",
    session_timeout_s=10.0,
    heartbeat_interval_s=2.5,
    rebalance_timeout_s=10.0,
    fetch_max_wait_ms=10,
    correct_end_offsets=True,
)

PROFILES: dict[ProfileName, BrokerProfile] = {
    "tansu": _TANSU,
    "tansu-test": replace(
        _TANSU,
        name="tansu-test",
        session_timeout_s=2.0,
        heartbeat_interval_s=0.5,
        rebalance_timeout_s=2.0,
    ),
    "kafka": BrokerProfile(
        name="kafka",
        session_timeout_s=60.0,
        heartbeat_interval_s=3.0,
        rebalance_timeout_s=60.0,
        fetch_max_wait_ms=100,
        correct_end_offsets=False,
    ),
}
