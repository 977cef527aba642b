"""Sending notifications through Apprise, off the event loop, with retries; failures counted, logged once per interval.

``apprise_senders(routes)`` imports Apprise (the optional ``alerts`` extra) only when
routes exist, checks every URL at start, and returns one blocking ``Sender`` per route.
``DeliveryWorker`` owns a bounded queue: ``submit`` never waits (a full queue drops and
counts), and ``run`` sends one notification at a time in a thread (``asyncio.to_thread``),
so a slow SMTP server or webhook never delays ingest. Retries follow ``backoff_delays_s``,
a pure generator like websockets' reconnect backoff.

Secrets: URLs never reach a log line; routes are logged as ``scheme://host`` (``redact_url``).
Not here: when to send (``collector.alerts.notify``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from collector.alerts.notify import Notification
from collector.alerts.routes import Route, redact_url
from collector.alerts.settings import AlertConfigError

log = logging.getLogger(__name__)

Sender = Callable[[Notification], bool]  # blocking; True when every URL of the route accepted it
Clock = Callable[[], float]

# Notifications waiting to be sent. Grouping keeps the rate low (one per group per group_interval),
# so 1,000 waiting means every target is down; past it new ones are dropped and counted, not queued.
MAX_QUEUED = 1000

# At most one warning per this interval about failed deliveries, with the count since the last one.
FAILURE_LOG_INTERVAL_S = 300.0


def backoff_delays_s(first_s: float = 2.0, factor: float = 4.0, retries: int = 3) -> Iterator[float]:
    """The waits before each retry: ``first_s``, then ``factor`` times the previous one."""
    delay = first_s
    for _ in range(retries):
        yield delay
        delay *= factor


# Three retries at 2, 8 and 32 s: a webhook restarting or a flaky network gets through within a
# minute; a longer outage is a failed delivery, counted in health, instead of an ever-growing backlog.
RETRY_DELAYS_S = tuple(backoff_delays_s(2.0, 4.0, 3))


def silence_apprise_logs() -> None:
    """Keep Apprise's own log lines out of the collector's log; call it from ``main``, with the logging setup.

    At DEBUG Apprise logs every URL it loads with only the password masked: user names,
    ntfy topics, webhook paths and tokens in the host part show. Its warnings quote peers'
    error bodies, which may echo a token. The worker's own line (route, ``scheme://host``,
    why, how many) is what an operator needs.
    """
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)


def apprise_senders(routes: Iterable[Route]) -> dict[str, Sender]:
    """One sender per route, each URL checked by Apprise now; raises ``AlertConfigError`` on a bad one."""
    routes = tuple(routes)
    if not routes:
        return {}
    try:
        import apprise  # noqa: PLC0415 - the optional 'alerts' extra, needed only when routes exist
    except ImportError as exc:
        raise AlertConfigError(
            f"alerts: {len(routes)} route(s) configured, but Apprise is not installed:"
            " expected `pip install 'nodewatch[alerts]'` (or remove the [[alerts.route]] tables)"
        ) from exc
    senders: dict[str, Sender] = {}
    for route in routes:
        client = apprise.Apprise()
        for url in route.urls:
            # The first add() loads every Apprise plugin; its e-mail plugin imports imghdr, deprecated
            # since Python 3.11 (PEP 594). Not ours to fix, and not worth a warning in the collector's log.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
                accepted = client.add(url)
            if not accepted:
                raise AlertConfigError(
                    f"alert route {route.name!r}: key 'urls': expected a URL Apprise can send to, got {redact_url(url)}"
                )

        def send(notification: Notification, client: apprise.Apprise = client) -> bool:
            return bool(
                client.notify(body=notification.body, title=notification.title, notify_type=notification.notify_type)
            )

        senders[route.name] = send
    return senders


@dataclass(slots=True)
class DeliveryStats:
    """Counters for health and /metrics."""

    delivered: int = 0
    failed: int = 0  # every retry failed, or the route has no sender
    dropped: int = 0  # the queue was full
    retries: int = 0


class DeliveryWorker:
    """Sends notifications in order, one at a time, in a thread; its owner runs ``run`` and cancels it."""

    def __init__(
        self,
        senders: Mapping[str, Sender],
        *,
        targets: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        retry_delays_s: Iterable[float] = RETRY_DELAYS_S,
        log_interval_s: float = FAILURE_LOG_INTERVAL_S,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._senders = dict(senders)
        self._targets = dict(targets or {})  # route name -> "scheme://host, ..." for log lines
        self._clock = clock
        self._retry_delays_s = tuple(retry_delays_s)
        self._log_interval_s = log_interval_s
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(max_queued)
        self._unlogged = 0
        self._logged_at = -math.inf
        self.stats = DeliveryStats()

    @property
    def queued(self) -> int:
        """Notifications waiting to be sent."""
        return self._queue.qsize()

    def submit(self, notifications: Iterable[Notification]) -> None:
        """Queue notifications for sending; never waits (a full queue drops them, counted)."""
        for notification in notifications:
            try:
                self._queue.put_nowait(notification)
            except asyncio.QueueFull:
                self.stats.dropped += 1
                self._failed(notification, "the delivery queue is full")

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            notification = await self._queue.get()
            await self._deliver(notification)

    async def _deliver(self, notification: Notification) -> None:
        sender = self._senders.get(notification.route)
        if sender is None:
            self._failed(notification, "the route has no sender")
            return
        delays = iter(self._retry_delays_s)
        while True:
            if await asyncio.to_thread(_send, sender, notification):
                self.stats.delivered += 1
                return
            delay_s = next(delays, None)
            if delay_s is None:
                self._failed(notification, f"every attempt failed ({1 + len(self._retry_delays_s)})")
                return
            self.stats.retries += 1
            await asyncio.sleep(delay_s)

    def _failed(self, notification: Notification, why: str) -> None:
        """Count a failed delivery; warn at most once per ``log_interval_s``, with the count since."""
        self.stats.failed += 1
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at < self._log_interval_s:
            return
        targets = self._targets.get(notification.route, "?")
        log.warning(
            "alert delivery failed: %d notification(s) since the last warning; latest to route %r (%s): %s",
            self._unlogged,
            notification.route,
            targets,
            why,
        )
        self._unlogged = 0
        self._logged_at = now


def _send(sender: Sender, notification: Notification) -> bool:
    """Run one sender in the worker thread; a plugin that raises counts as a failed attempt."""
    try:
        return sender(notification)
    except Exception as exc:  # noqa: BLE001 - a third-party plugin's bug must not end delivery for every route
        log.debug("alert delivery: sender raised %s", type(exc).__name__)
        return False
