"""``AlertBook``: the collector's live alerts as the viewer knows them, and what is news.

An ``alerts`` message adds (part of) the live set a new connection starts with; ``reset`` on
the snapshot clears the old one first. An ``alert`` message moves each alert to its new
state, and drops it for ``inactive`` or ``resolved`` (docs/protocol.md 5.12). Only ``alert``
events are news for notifications: newly firing, and resolved. A firing alert that comes back
from ``unknown`` never stopped, as far as anyone knows (docs/alerts.md 1), so it is not news.

Pure: no Qt, no clock (times come from the messages). Not here: the wire checks
(``viewer.alertwire``), widgets (``viewer.alertspanel``), notifications (``viewer.notifications``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from viewer.alertwire import AlertEvent, AlertKey, AlertMessage, AlertNews

# The panel shows what needs a person: firing, and unknown (the node went quiet).
SHOWN_STATES: Final = frozenset({"firing", "unknown"})
_STATE_RANK: Final = {"firing": 0, "unknown": 1, "pending": 2}
_SEVERITY_RANK: Final = {"critical": 0, "warning": 1, "info": 2}


@dataclass(slots=True)
class Alert:
    """One live alert; ``since_at`` is when it fired (or went pending), by the collector's clock."""

    key: AlertKey
    severity: str
    state: str
    since_at: float
    summary: str


@dataclass(frozen=True, slots=True)
class AlertChange:
    """News for a person: ``alert`` newly ``firing`` or ``resolved``."""

    key: AlertKey
    severity: str
    new: str
    summary: str


# Bounds what a collector can make the viewer hold: the collector's own subscriber queue size.
MAX_ALERTS: Final = 100_000


class AlertBook:
    """Every live alert of the collector followed, by key."""

    def __init__(self) -> None:
        self._alerts: dict[AlertKey, Alert] = {}
        self.heard = False  # an alerts message came on this connection (else: the collector sends none)
        self.server_offset_s = 0.0  # collector wall clock minus ours, from the last message

    def reset(self) -> None:
        """A new connection: its ``alerts`` message will say what is live."""
        self._alerts.clear()
        self.heard = False

    def apply(self, news: AlertNews, now_at: float) -> list[AlertChange]:
        """Apply one message; return the news in it (none for an ``alerts`` message)."""
        self.server_offset_s = news.server_time_at - now_at
        self.heard = True
        if isinstance(news, AlertMessage):
            return [change for event in news.events if (change := self._move(event)) is not None]
        for entry in news.alerts:
            key = AlertKey(entry.alertname, entry.node_id, entry.instance)
            if key in self._alerts or len(self._alerts) < MAX_ALERTS:
                since_at = entry.fired_at if entry.fired_at is not None else entry.active_since_at
                self._alerts[key] = Alert(key, entry.severity, entry.state, since_at, entry.summary)
        return []

    def shown(self) -> list[Alert]:
        """Firing then unknown alerts, most severe first, then oldest first."""
        rows = [alert for alert in self._alerts.values() if alert.state in SHOWN_STATES]
        rows.sort(key=lambda a: (_STATE_RANK[a.state], _SEVERITY_RANK.get(a.severity, 3), a.since_at, a.key.node_id))
        return rows

    def _move(self, event: AlertEvent) -> AlertChange | None:
        key = AlertKey(event.alertname, event.node_id, event.instance)
        if event.new in {"inactive", "resolved"}:
            gone = self._alerts.pop(key, None)
            if event.new == "resolved" and (gone is None or gone.state != "pending"):
                return AlertChange(key, event.severity, "resolved", event.summary)
            return None
        alert = self._alerts.get(key)
        if alert is None:
            if len(self._alerts) >= MAX_ALERTS:
                return None
            alert = self._alerts[key] = Alert(key, event.severity, event.new, event.active_since_at, event.summary)
        if event.new == "firing" and event.old in {"inactive", "pending"}:
            alert.since_at = event.changed_at
        alert.state, alert.severity, alert.summary = event.new, event.severity, event.summary
        if event.new == "firing" and event.old != "unknown":
            return AlertChange(key, event.severity, "firing", event.summary)
        return None
