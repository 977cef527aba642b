"""Grouping and scheduling of notifications: a pure core fed alert transitions, timed by a clock passed in.

``Dispatcher`` follows Alertmanager's dispatcher (``dispatch/dispatch.go``): each route
splits alerts into groups by ``group_by``; a new group waits ``group_wait`` to gather
company (so a mass outage of 500 nodes is one notification, not 500), a group that has
notified waits ``group_interval`` before telling about changes, and a group still firing
is repeated every ``repeat_interval``. Resolved alerts are told once, if they had been told.

Inhibition by liveness: an alert that goes ``unknown`` (its node stale or offline) is
held silently (the offline alert covers the node) and is neither repeated nor resolved
until fresh data judges it again.

``due(now)`` returns ``Notification`` values; sending them is ``collector.alerts.delivery``.
``to_state``/``restore`` keep groups across a restart so repeats stay on schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.alerts.model import AlertStateError, AlertTransition
from collector.alerts.routes import Route

# A notification lists at most this many alerts, then "and N more": chat services cut long
# messages (Discord at 2,000 characters, Slack's blocks at 3,000) and nobody reads 500 lines.
MAX_LISTED = 30
_NOTIFY_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class NotifiedAlert:
    """One alert as a notification lists it."""

    key: str
    rule: str
    node_id: str
    instance: str
    severity: str
    since: float
    value: float | None
    summary: str

    @classmethod
    def of(cls, t: AlertTransition) -> NotifiedAlert:
        """From the transition that made it firing or resolved."""
        return cls(t.key, t.rule, t.node_id, t.instance, t.severity, t.active_since, t.value, t.summary)

    def line(self) -> str:
        """One line of a notification's body."""
        where = self.node_id + (f" {self.instance}" if self.instance else "")
        value = "" if self.value is None else f" = {self.value:.4g}"
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        summary = f": {self.summary}" if self.summary else ""
        return f"- {self.rule} on {where}{value} since {since}{summary}"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one route: what fires in a group now, and what resolved since the last message."""

    route: str
    group: tuple[str, ...]
    firing: tuple[NotifiedAlert, ...]
    resolved: tuple[NotifiedAlert, ...]
    at: float
    repeat: bool = False

    @property
    def title(self) -> str:
        """``[FIRING:3] node_offline`` or ``[RESOLVED] node_offline``: status, count, and the group."""
        status = f"FIRING:{len(self.firing)}" if self.firing else "RESOLVED"
        group = " ".join(value for value in self.group if value) or "alerts"
        return f"[{status}] {group}" + (" (repeat)" if self.repeat else "")

    @property
    def body(self) -> str:
        """The alerts, firing first, at most ``MAX_LISTED`` lines of each."""
        parts = []
        for heading, alerts in (("Firing", self.firing), ("Resolved", self.resolved)):
            if alerts:
                lines = [a.line() for a in alerts[:MAX_LISTED]]
                if len(alerts) > MAX_LISTED:
                    lines.append(f"- and {len(alerts) - MAX_LISTED} more")
                parts.append(f"{heading} ({len(alerts)}):\n" + "\n".join(lines))
        return "\n\n".join(parts)

    @property
    def notify_type(self) -> str:
        """Apprise's type: failure for critical, warning, info, or success when all resolved."""
        if not self.firing:
            return "success"
        worst = max(self.firing, key=lambda a: _SEVERITY_RANK.get(a.severity, 0))
        return _NOTIFY_TYPE.get(worst.severity, "info")


@dataclass(slots=True)
class _Group:
    route: Route
    key: tuple[str, ...]
    firing: dict[str, NotifiedAlert] = field(default_factory=dict)
    held: dict[str, NotifiedAlert] = field(default_factory=dict)  # unknown: silent until judged again
    resolved: dict[str, NotifiedAlert] = field(default_factory=dict)  # to tell in the next message
    told: set[str] = field(default_factory=set)  # keys some message of this group has listed as firing
    changed: bool = False
    last_sent_at: float | None = None
    next_at: float = math.inf

    def schedule_change(self, now: float) -> None:
        """Something to tell: after group_wait for a new group, else group_interval after the last message."""
        self.changed = True
        if self.last_sent_at is None:
            wait = now + self.route.group_wait_s
        else:
            wait = max(now, self.last_sent_at + self.route.group_interval_s)
        self.next_at = min(self.next_at, wait)


def _group_key(route: Route, t: AlertTransition) -> tuple[str, ...]:
    fields = {"alertname": t.rule, "severity": t.severity, "node": t.node_id, "instance": t.instance}
    return tuple(fields[name] if name in fields else t.labels.get(name[6:], "") for name in route.group_by)


class Dispatcher:
    """Groups of alerts per route; ``add`` takes transitions, ``due`` says what to send now."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._groups: dict[tuple[str, tuple[str, ...]], _Group] = {}

    def add(self, transitions: Iterable[AlertTransition], now: float) -> None:
        """Record what changed; nothing is sent before ``due`` says so."""
        for t in transitions:
            for route in self.routes:
                if route.matches(t.rule, t.severity, t.node_id, t.labels):
                    self._apply(route, t, now)

    def _apply(self, route: Route, t: AlertTransition, now: float) -> None:
        key = (route.name, _group_key(route, t))
        group = self._groups.get(key)
        if group is None:
            if t.new != "firing":
                return  # nothing this route ever heard of
            group = self._groups[key] = _Group(route, key[1])
        alert = NotifiedAlert.of(t)
        if t.new == "firing" and t.old == "unknown":
            group.held.pop(t.key, None)
            group.firing[t.key] = alert  # back from a quiet spell, still firing: no news
        elif t.new == "firing":
            group.firing[t.key] = alert
            group.resolved.pop(t.key, None)
            group.schedule_change(now)
        elif t.new == "unknown" and t.key in group.firing:
            group.held[t.key] = group.firing.pop(t.key)
        elif t.new in ("resolved", "inactive"):
            group.firing.pop(t.key, None)
            group.held.pop(t.key, None)
            if t.key in group.told:
                group.told.discard(t.key)
                if route.send_resolved and t.new == "resolved":
                    group.resolved[t.key] = alert
                    group.schedule_change(now)
        self._drop_if_empty(key, group)

    def next_due(self) -> float | None:
        """When ``due`` has something to send (wall time), or None."""
        soonest = min((g.next_at for g in self._groups.values()), default=math.inf)
        return None if soonest == math.inf else soonest

    def due(self, now: float) -> list[Notification]:
        """Every notification due by ``now``; each group's timers move on."""
        out = []
        for key, group in list(self._groups.items()):
            if group.next_at > now:
                continue
            repeat = not group.changed
            firing = tuple(sorted(group.firing.values(), key=lambda a: a.key))
            resolved = tuple(sorted(group.resolved.values(), key=lambda a: a.key))
            if firing or resolved:
                out.append(Notification(group.route.name, group.key, firing, resolved, now, repeat=repeat))
                group.told = set(group.firing) | group.told & set(group.held)
                group.resolved.clear()
                group.last_sent_at = now
            group.changed = False
            group.next_at = now + group.route.repeat_interval_s if group.firing else math.inf
            self._drop_if_empty(key, group)
        return out

    def _drop_if_empty(self, key: tuple[str, tuple[str, ...]], group: _Group) -> None:
        if not (group.firing or group.held or group.resolved):
            del self._groups[key]

    # ---- persistence ---------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Groups as plain data, so a restart keeps repeats on schedule and tells pending news once."""
        return {
            "groups": [
                {
                    "route": g.route.name,
                    "key": list(g.key),
                    "firing": [asdict(a) for a in g.firing.values()],  # read back as NotifiedAlert(**a)
                    "held": [asdict(a) for a in g.held.values()],
                    "resolved": [asdict(a) for a in g.resolved.values()],
                    "told": sorted(g.told),
                    "changed": g.changed,
                    "last_sent_at": g.last_sent_at,
                    "next_at": None if g.next_at == math.inf else g.next_at,
                }
                for g in self._groups.values()
            ]
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load ``to_state``'s output; groups of routes no longer configured are dropped.

        Raises ``AlertStateError`` on a document of another shape.
        """
        routes = {route.name: route for route in self.routes}
        try:
            for saved in state.get("groups", []):
                route = routes.get(saved["route"])
                if route is None:
                    continue
                group = _Group(route, tuple(str(v) for v in saved["key"]))
                group.firing = {a["key"]: NotifiedAlert(**a) for a in saved["firing"]}
                group.held = {a["key"]: NotifiedAlert(**a) for a in saved["held"]}
                group.resolved = {a["key"]: NotifiedAlert(**a) for a in saved["resolved"]}
                group.told = {str(key) for key in saved["told"]}
                group.changed = bool(saved["changed"])
                last_sent, next_at = saved["last_sent_at"], saved["next_at"]
                group.last_sent_at = None if last_sent is None else float(last_sent)
                group.next_at = math.inf if next_at is None else float(next_at)
                self._groups[(route.name, group.key)] = group
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AlertStateError(f"dispatcher state: expected what to_state writes, got {exc!r}") from exc
