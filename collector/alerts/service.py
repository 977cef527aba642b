"""The alerts shell the collector holds: engine, dispatcher and delivery, and the one task that runs their timers.

The ingest shell calls ``observe``/``liveness``/``reboot``/``forget`` (synchronous,
microseconds: they never wait on delivery); each returns the alert transitions, which
also go to ``on_transitions`` (for the store, the subscribers and /metrics) and to the
dispatcher. ``run`` is one long-lived task: it sleeps until the engine's or the
dispatcher's next timer (or until poked), applies it, and hands due notifications to
the ``DeliveryWorker``, whose task it also owns.

Not here: HTTP handlers, the store, or the wire format of ``alert`` messages.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from collector.alerts.delivery import DeliveryWorker, Sender
from collector.alerts.engine import AlertEngine
from collector.alerts.model import AlertStateError, AlertTransition
from collector.alerts.notify import Dispatcher
from collector.alerts.routes import AlertsConfig
from collector.alerts.samples import Flattener
from shared.messages import Heartbeat, NodeState

Clock = Callable[[], float]
TransitionSink = Callable[[list[AlertTransition]], None]
StateSink = Callable[[], None]
# The timer task wakes at least this often: a wall-clock step (NTP) then costs at most this much delay.
MAX_SLEEP_S = 5.0
# psutil's boot_time() is /proc/stat's btime: whole seconds, and it moves when NTP steps the clock.
# A move above this is a reboot; below it, a clock adjustment.
BOOT_TIME_JITTER_S = 5.0
# A sample older than this many intervals (collector time, skew removed) is backlog replayed after an
# outage: history, not news. Three, like the missed intervals after which a node is stale.
LIVE_SAMPLE_INTERVALS = 3


def boot_changed(old_boot_at: float | None, new_boot_at: float | None) -> bool:
    """Whether a hello's boot time says the node rebooted since the previous hello."""
    return old_boot_at is not None and new_boot_at is not None and abs(new_boot_at - old_boot_at) > BOOT_TIME_JITTER_S


def is_live_sample(sampled_at: float, wall: float, interval_s: float, clock_skew_s: float | None) -> bool:
    """Whether a heartbeat is news to judge alerts on, not a replayed backlog sample."""
    age_s = wall - (sampled_at - (clock_skew_s or 0.0))
    return age_s <= LIVE_SAMPLE_INTERVALS * interval_s


def _ignore(transitions: list[AlertTransition]) -> None:
    """The default sink: nobody stores or publishes."""


def _nothing() -> None:
    """The default ``on_sent``: nobody saves the dispatcher's state."""


class AlertService:
    """Alerts for one collector; ``wall_clock`` stamps alerts (they outlive the process), ``clock`` paces logs."""

    def __init__(
        self,
        config: AlertsConfig,
        senders: Mapping[str, Sender],
        *,
        on_transitions: TransitionSink = _ignore,
        on_sent: StateSink = _nothing,
        wall_clock: Clock = time.time,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.engine = AlertEngine(config.rules)
        self.dispatcher = Dispatcher(config.routes)
        self.worker = DeliveryWorker(senders, targets={r.name: r.targets for r in config.routes}, clock=clock)
        self.flatten = Flattener(self.engine.watched_metrics)
        self._on_transitions = on_transitions
        self._on_sent = on_sent  # the dispatcher told someone: its state (what was told when) must be saved
        self._wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._target = math.inf

    # ---- inputs from the ingest shell ----------------------------------------------------

    def observe(
        self,
        node_id: str,
        labels: Mapping[str, str],
        heartbeat: Heartbeat,
        *,
        cpu_count: int | None = None,
        clock_skew_s: float | None = None,
        dropped_samples: int | None = None,
        missing_samples: int | None = None,
    ) -> list[AlertTransition]:
        """Judge the newest live sample of a node (never a replayed backlog sample: see docs/alerts.md)."""
        values = self.flatten(
            heartbeat,
            cpu_count=cpu_count,
            clock_skew_s=clock_skew_s,
            dropped_samples=dropped_samples,
            missing_samples=missing_samples,
        )
        return self._emit(self.engine.observe(node_id, labels, values, self._wall_clock()))

    def liveness(
        self, node_id: str, state: NodeState, at: float, labels: Mapping[str, str] | None = None
    ) -> list[AlertTransition]:
        """The cache moved a node to ``state`` at wall time ``at`` (``NodeStatus.state_since_at``)."""
        return self._emit(self.engine.liveness(node_id, state, at, labels))

    def reboot(self, node_id: str, labels: Mapping[str, str] | None = None) -> list[AlertTransition]:
        """A hello brought a new boot time for a node the collector knew."""
        return self._emit(self.engine.reboot(node_id, self._wall_clock(), labels))

    def forget(self, node_id: str) -> list[AlertTransition]:
        """The cache forgot a node."""
        return self._emit(self.engine.forget(node_id, self._wall_clock()))

    # ---- views -----------------------------------------------------------------------------

    def api_alerts(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/alerts``: every pending, firing and unknown alert."""
        alerts = [inst.view() for inst in self.engine.alerts()]
        counts = dict.fromkeys(("pending", "firing", "unknown"), 0)
        for alert in alerts:
            counts[alert["state"]] += 1
        return {"server_time_at": self._wall_clock(), "counts": counts, "alerts": alerts}

    def metric_series(self) -> dict[tuple[str, str, str, str], int]:
        """``nodewatch_alerts{alertname, node, severity, state}`` label sets and their values.

        Like Prometheus's ALERTS, but the value counts instances: two full mounts of one
        node under one rule share a label set, and a series may appear only once.
        """
        series: dict[tuple[str, str, str, str], int] = {}
        for inst in self.engine.alerts():
            labels = (inst.rule.name, inst.node_id, inst.rule.severity, inst.state)
            series[labels] = series.get(labels, 0) + 1
        return series

    def health(self) -> dict[str, int]:
        """For ``/api/v1/health``: firing alerts and the delivery counters."""
        stats = self.worker.stats
        return {
            "firing": sum(1 for i in self.engine.alerts() if i.state == "firing"),
            "notifications_delivered": stats.delivered,
            "notifications_failed": stats.failed,
            "notifications_dropped": stats.dropped,
            "notifications_queued": self.worker.queued,
        }

    # ---- persistence ---------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Engine and dispatcher state as one JSON-able document for the store."""
        return {"engine": self.engine.to_state(), "dispatcher": self.dispatcher.to_state()}

    def restore(self, state: Mapping[str, Any]) -> list[str]:
        """Load ``to_state``'s output; returns the keys of alerts dropped because their rule is gone.

        Raises ``AlertStateError`` (a ValueError) on a document of another shape, before
        changing anything: the caller logs it and runs on with no saved alerts.
        """
        engine, dispatcher = state.get("engine"), state.get("dispatcher", {})
        if not isinstance(engine, Mapping) or not isinstance(dispatcher, Mapping):
            raise AlertStateError(f"alert state: expected engine and dispatcher tables, got {sorted(state)!r:.80}")
        checked = Dispatcher(self.config.routes)
        checked.restore(dispatcher)  # check it before the engine takes anything
        dropped = self.engine.restore(engine)
        self.dispatcher = checked
        self._wake.set()
        return dropped

    # ---- the timer task ------------------------------------------------------------------

    async def run(self) -> None:
        """Run timers and delivery until cancelled (owned by the collector's ``cleanup_ctx``)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.worker.run())
            tasks.create_task(self._timers())

    async def _timers(self) -> None:
        while True:
            now = self._wall_clock()
            self._emit(self.engine.tick(now))
            notifications = self.dispatcher.due(now)
            if notifications:
                self.worker.submit(notifications)
                self._on_sent()
            due = min(d for d in (self.engine.next_due(), self.dispatcher.next_due(), math.inf) if d is not None)
            self._target = due
            self._wake.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(min(MAX_SLEEP_S, max(0.0, due - self._wall_clock()))):
                    await self._wake.wait()

    def _emit(self, transitions: list[AlertTransition]) -> list[AlertTransition]:
        if transitions:
            now = self._wall_clock()
            self.dispatcher.add(transitions, now)
            self._on_transitions(transitions)
            due = min(d for d in (self.engine.next_due(), self.dispatcher.next_due(), math.inf) if d is not None)
            if due < self._target:
                self._wake.set()
        return transitions
