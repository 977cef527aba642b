"""The collector's alerts: ``AlertHub`` feeds the ``AlertService`` from the node cache and keeps what it says.

The runtime calls ``sample`` for each node's newest heartbeat (only live ones, not a
replayed backlog: ``is_live_sample``) and ``changed`` with every change list of a hello,
a close or a liveness pass: status changes become liveness transitions, a new boot time
in the facts is a reboot, a removed node is forgotten. Transitions land in the event
history (``GET /api/v1/alerts/history``), in each opted-in subscriber's queue
(``?alerts=1``), and mark the state dirty.

Persistence: with a data dir, ``alerts.json`` (the service's state and the boot times)
is rewritten atomically at most once per ``SAVE_INTERVAL_S`` while dirty, and once more at
shutdown; the events are appended to ``alert_events.jsonl``. Both writes run in a thread.
A restart restores both before ingest opens, so firing alerts stay firing and nobody is
told twice. With no data dir everything stays in memory.

Not here: the engine and delivery (``collector.alerts``), HTTP (``collector.alerts_api``),
the wire form of alert messages (``collector.wire``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from collector.alerts.delivery import Sender
from collector.alerts.model import NO_LABELS, AlertTransition
from collector.alerts.routes import AlertsConfig
from collector.alerts.service import AlertService, boot_changed, is_live_sample
from collector.alerts.statefile import MAX_EVENTS, AlertStateFile
from collector.cache import NodeCache, NodeRecord
from collector.changes import Change, ChangeKind
from collector.store.policy import RetentionPolicy
from collector.timers import Clock
from shared.messages import Heartbeat

log = logging.getLogger("nodewatch.collector")

# While the state is dirty it is saved at most this often. Notifications wait group_wait (30 s by
# default) before they go out, so a second's delay never lets a restart re-send one.
SAVE_INTERVAL_S = 1.0
# Alert events are kept as long as the raw history (issue 15), and at most MAX_EVENTS of them.
EVENT_RETENTION_S = RetentionPolicy().tiers[0].keep_s
STATE_FORMAT = 1
_STATUS_BIT = ChangeKind.STATUS.value
_REMOVED_BIT = ChangeKind.REMOVED.value
AlertRow = dict[str, Any]


class AlertSubscriber(Protocol):
    """What the hub needs of a subscriber (``collector.subscribe.Subscriber``)."""

    alerts: bool
    pending_alerts: deque[AlertRow]
    wake: asyncio.Event


class AlertHub:
    """One collector's alerts: the service, its inputs from the cache, its history and its saved state."""

    def __init__(
        self,
        config: AlertsConfig,
        senders: Mapping[str, Sender],
        cache: NodeCache,
        subscribers: Iterable[AlertSubscriber],
        *,
        state_dir: Path | None,
        wall_clock: Clock,
        clock: Clock,
        retention_s: float = EVENT_RETENTION_S,
    ) -> None:
        self.cache = cache
        self.retention_s = retention_s
        self.subscribers = subscribers
        self.wall_clock = wall_clock
        self.service = AlertService(
            config,
            senders,
            on_transitions=self._transitions,
            on_sent=self._mark_dirty,
            wall_clock=wall_clock,
            clock=clock,
        )
        self.file = AlertStateFile(state_dir) if state_dir is not None else None
        self.events: deque[AlertRow] = deque(maxlen=MAX_EVENTS)
        self.boot_times: dict[str, float] = {}  # node id -> boot_time_at of its last hello
        self.save_failures = 0
        self._unsaved: list[AlertRow] = []
        self._dirty = asyncio.Event()
        self._firing: int | None = None  # firing alerts, recounted after the next transition (None: stale)
        log.info(
            "alerts: %d rules (%s), %d routes (%s), state %s",
            len(config.rules),
            ", ".join(rule.name for rule in config.rules),
            len(config.routes),
            "; ".join(f"{route.name}: {route.targets}" for route in config.routes) or "none",
            "in memory" if state_dir is None else f"in {state_dir}",
        )

    # ---- inputs ----------------------------------------------------------------------------

    def sample(self, node_id: str, heartbeat: Heartbeat) -> None:
        """The node's newest sample: judge it if it is news, not a backlog sample replayed after an outage."""
        record = self.cache.get(node_id)
        if record is not None:
            self.sample_record(record, heartbeat)

    def sample_record(self, record: NodeRecord, heartbeat: Heartbeat) -> None:
        """``sample`` for the caller that holds the node's record already (the ingest path, per heartbeat)."""
        skew = record.clock_skew_s
        if is_live_sample(heartbeat.sampled_at, self.wall_clock(), record.interval_s, skew):
            self.service.observe(
                record.node_id,
                node_labels(record),
                heartbeat,
                cpu_count=record.facts.cpu_count_logical,
                clock_skew_s=skew,
                dropped_samples=record.dropped_samples,
                missing_samples=record.missing_samples,
            )

    def changed(self, changes: list[Change]) -> None:
        """Changes of a hello, a close or a liveness pass: liveness, reboots and forgotten nodes."""
        for change in changes:
            node_id, bits = change.node_id, change.kind.value
            if bits & _REMOVED_BIT:
                self.service.forget(node_id)
                if self.boot_times.pop(node_id, None) is not None:
                    self._mark_dirty()
                continue
            record = self.cache.get(node_id)
            if record is None:
                continue
            if bits & _STATUS_BIT:
                self.service.liveness(node_id, record.state, record.state_since_at, node_labels(record))
            # Any change, not only FACTS: a node the store restored at start says hello with the facts
            # it had, and its boot time must be learnt then to see its next reboot.
            boot_at = record.facts.boot_time_at
            old = self.boot_times.get(node_id)
            if boot_at is not None and boot_at != old:
                self.boot_times[node_id] = boot_at
                self._mark_dirty()
                if boot_changed(old, boot_at):
                    self.service.reboot(node_id, node_labels(record))

    def _transitions(self, transitions: list[AlertTransition]) -> None:
        self._firing = None
        rows = [t.to_dict() for t in transitions]
        events = self.events
        events.extend(rows)
        oldest = self.wall_clock() - self.retention_s
        while events and _changed_at(events[0]) < oldest:
            events.popleft()
        if self.file is not None:
            self._unsaved.extend(rows)
        for sub in self.subscribers:
            if sub.alerts:
                sub.pending_alerts.extend(rows)
                sub.wake.set()
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        self._dirty.set()

    # ---- views -------------------------------------------------------------------------------

    def health(self) -> dict[str, int]:
        """``AlertService.health()`` for ``/api/v1/health``, with the firing count recounted only after a transition.

        The service counts over every node's alerts, sorted: 5 ms a call at 10,000 nodes, and health is
        polled (bench/e2e.py polls it at 50 Hz, a load balancer often): that was a quarter of a core.
        Every change of an alert's state is a transition (they feed the history), so between two the
        count stands; the delivery counters are read live.
        """
        if self._firing is None:
            self._firing = sum(1 for alert in self.service.engine.alerts() if alert.state == "firing")
        worker = self.service.worker
        return {
            "firing": self._firing,
            "notifications_delivered": worker.stats.delivered,
            "notifications_failed": worker.stats.failed,
            "notifications_dropped": worker.stats.dropped,
            "notifications_queued": worker.queued,
        }

    def history(self, from_at: float, to_at: float, limit: int) -> tuple[list[AlertRow], bool]:
        """Events with ``from_at <= changed_at <= to_at``, oldest first, at most ``limit``; and whether cut."""
        rows = sorted((e for e in self.events if from_at <= e.get("changed_at", math.nan) <= to_at), key=_changed_at)
        return rows[:limit], len(rows) > limit

    # ---- persistence -------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """What ``alerts.json`` holds."""
        return {"format": STATE_FORMAT, "service": self.service.to_state(), "boot_times": dict(self.boot_times)}

    def restore(self) -> None:
        """Load the saved events and state (at start, before ingest opens); a bad file is logged and ignored."""
        if self.file is None:
            return
        try:
            self.events.extend(self.file.load_events(since_at=self.wall_clock() - self.retention_s))
            document = self.file.load_state()
        except (OSError, ValueError) as exc:
            log.warning("alerts: starting with no saved alert state: cannot read %s: %.200r", self.file.directory, exc)
            return
        if document is None:
            return
        state, boots = document.get("service"), document.get("boot_times", {})
        if document.get("format") != STATE_FORMAT or not isinstance(state, Mapping) or not isinstance(boots, dict):
            log.warning(
                "alerts: ignoring %s: expected format %d, got %.80r", self.file.state_path, STATE_FORMAT, document
            )
            return
        try:
            dropped = self.service.restore(state)
        except ValueError as exc:
            log.warning("alerts: ignoring %s: %.200r", self.file.state_path, exc)
            return
        self._firing = None  # restored alerts come with no transitions
        self.boot_times = {k: float(v) for k, v in boots.items() if isinstance(v, int | float)}
        if dropped:
            log.info("alerts: dropped saved alerts whose rule is gone: %r", dropped)

    def save_now(self) -> None:
        """Save state and unsaved events, blocking (at shutdown, after the timer task ended)."""
        if self.file is None:
            return
        events, self._unsaved = self._unsaved, []
        try:
            self.file.append_events(events)
            self.file.save_state(self.document())
        except OSError as exc:
            self.save_failures += 1
            log.warning("alerts: cannot save alert state in %s: %.200r", self.file.directory, exc)

    async def run(self) -> None:
        """Timers, delivery and saving until cancelled (a ``cleanup_ctx`` task); a last save at the end."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.service.run())
                if self.file is not None:
                    tasks.create_task(self._save_loop(self.file))
        finally:
            self.save_now()

    async def _save_loop(self, file: AlertStateFile) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            document, events = self.document(), self._unsaved
            self._unsaved = []
            try:
                await asyncio.to_thread(_save, file, document, events)
            except OSError as exc:
                self.save_failures += 1
                self._unsaved[:0] = events
                self._dirty.set()
                log.warning("alerts: cannot save alert state in %s (retrying): %.200r", file.directory, exc)
            await asyncio.sleep(SAVE_INTERVAL_S)


def node_labels(record: NodeRecord) -> Mapping[str, str]:
    """The labels rules and routes select by: the hello's ``facts.labels``.

    The same mapping object while the facts stand (the engine re-plans a node only when it is not);
    ``NO_LABELS`` for none.
    """
    return record.facts.labels or NO_LABELS


def _save(file: AlertStateFile, document: Mapping[str, Any], events: list[AlertRow]) -> None:
    """Events first: a crash between the two then re-reads an event, never loses one."""
    file.append_events(events)
    file.save_state(document)


def _changed_at(row: AlertRow) -> float:
    value = row.get("changed_at")
    return float(value) if isinstance(value, int | float) else 0.0
