"""True end offsets on a broker whose ListOffsets is wrong for multi-record batches (Tansu).

Tansu answers ListOffsets(latest) with the first offset of the partition's last record batch
plus one, so a changelog written in normal batches looks shorter than it is and Faust's table
recovery stops early. The high watermark in a fetch response is right: fetching from the
reported end minus one returns the batch that holds that offset, and the true high watermark
with it. Where the broker is right this changes nothing (it only ever raises an end offset).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.stopping import despite_unreachable_broker

P = TypeVar("P", bound=tuple[str, int])


class EndOffsetsError(Exception):
    """The probe fetch did not answer in time; recovery must not guess."""


async def true_end_offsets(
    bootstrap_servers: str, reported: Mapping[P, int], timeout_s: float = 30.0
) -> dict[P, int]:
    ends = dict(reported)
    probed = {TopicPartition(tp[0], tp[1]): tp for tp, end in reported.items() if end > 0}
    if not probed:
        return ends
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await probe.start()
    try:
        probe.assign(list(probed))
        for partition, tp in probed.items():
            probe.seek(partition, reported[tp] - 1)
        pending = set(probed)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                names = ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(pending))
                raise EndOffsetsError(f"no fetch answer within {timeout_s}s for {names}")
            batches = await probe.getmany(*pending, timeout_ms=200)
            for partition, records in batches.items():
                tp = probed[partition]
                last = records[-1].offset + 1 if records else ends[tp]
                ends[tp] = max(ends[tp], last, probe.highwater(partition) or 0)
                pending.discard(partition)
    finally:
        await despite_unreachable_broker(probe.stop())
    return ends
