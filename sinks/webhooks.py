"""Alerts to configured webhooks (Slack-style JSON), from a queue of their own: a slow or
failing webhook is retried with backoff in the background and never holds up the agent that
raised the alert. A webhook that keeps failing drops the alert after the last attempt (it is
still on the alerts topic), and a full queue drops the oldest; both are logged."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientError, ClientSession, ClientTimeout

from schemas.models import Alert

log = logging.getLogger(__name__)
ATTEMPTS = 6
FIRST_BACKOFF_S = 0.2
QUEUE_SIZE = 1000
TIMEOUT_S = 5.0
_COLORS = {"CRITICAL": "#d00000", "HIGH": "#e85d04", "MEDIUM": "#ffba08", "LOW": "#8ecae6"}


def slack_payload(alert: Alert) -> dict[str, object]:
    return {
        "text": f"[{alert.severity}] {alert.rule}: {alert.message}",
        "attachments": [
            {
                "color": _COLORS.get(alert.severity, "#999999"),
                "fields": [
                    {"title": "rule", "value": alert.rule, "short": True},
                    {"title": "severity", "value": alert.severity, "short": True},
                    {"title": "channels", "value": ", ".join(alert.channels), "short": True},
                    {"title": "event", "value": alert.event_id, "short": True},
                ],
            }
        ],
    }


class WebhookSender:
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def enqueue(self, alert: Alert) -> None:
        if not self.urls:
            return
        if self._queue.full():
            dropped = self._queue.get_nowait()
            log.error("alert queue full: dropped %s", dropped.alert_id)
        self._queue.put_nowait(alert)

    async def run(self) -> None:
        async with ClientSession(timeout=ClientTimeout(total=TIMEOUT_S)) as session:
            while True:
                alert = await self._queue.get()
                for url in self.urls:
                    await self._deliver(session, url, alert)

    async def _deliver(self, session: ClientSession, url: str, alert: Alert) -> None:
        backoff = FIRST_BACKOFF_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with session.post(url, json=slack_payload(alert)) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except (ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt < ATTEMPTS:
                log.warning("webhook failed (%s), retry %d in %.1fs", problem, attempt, backoff)
                await asyncio.sleep(backoff)
                backoff *= 2
        log.error("webhook gave up on %s after %d attempts", alert.alert_id, ATTEMPTS)
