"""Faust's aiokafka transport, with a configurable consumer fetch wait and a flush that also
waits for the side producer.

faust-streaming 0.15.3 hard-codes ``fetch_max_wait_ms=1500``. On Tansu an empty fetch is held
for that whole time, so end-to-end latency was seconds; the broker profile sets the value.
Faust flushes its producer before committing offsets: flushing the side producer there too
keeps at-least-once for the outputs sent through it (``streams.side_producer``).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.side_producer import SideProducer


class _TunedApp(Protocol):
    fetch_max_wait_ms: int
    side_producer: SideProducer


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher, at consumer start.
        consumer._fetch_max_wait_ms = cast(_TunedApp, self.app).fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        await super().flush()
        await cast(_TunedApp, self.app).side_producer.flush()


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
