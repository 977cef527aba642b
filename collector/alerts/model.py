"""The values the alert engine hands out and keeps: alert instances, their transitions, and their plain-dict form.

An alert instance is one rule on one node (and one instance of a family metric, such as
a mount): ``node_offline/web-1/`` or ``disk_full/web-1//var``. Its state moves
inactive -> pending -> firing -> resolved, and to ``unknown`` while its node is stale or
offline. ``AlertTransition`` is what the engine returns for each move; the shell stores,
publishes and notifies it. ``instance_to_dict``/``instance_from_dict`` are the store's
and the restart's format: plain JSON-able dicts.

Not here: when states change (``collector.alerts.engine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, cast

from collector.alerts.plan import KeyPlan
from collector.alerts.rules import Rule, Severity
from shared.messages import NodeState

AlertState: TypeAlias = Literal["inactive", "pending", "firing", "resolved", "unknown"]
# States an instance can be stored in; inactive and resolved instances are not kept.
LIVE_STATES: tuple[AlertState, ...] = ("pending", "firing", "unknown")
STATE_FORMAT_VERSION = 1
NO_LABELS: Mapping[str, str] = MappingProxyType({})


class AlertStateError(ValueError):
    """A saved alert state document does not have the shape ``to_state`` writes."""


def alert_key(rule: str, node_id: str, instance: str) -> str:
    """The stable identity of one alert instance, as the API, the store and notifications show it."""
    return f"{rule}/{node_id}/{instance}"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One alert instance moved from ``old`` to ``new`` at wall time ``at``."""

    rule: str
    node_id: str
    instance: str  # the mount, sensor or interface of a family metric; "" otherwise
    severity: Severity
    old: AlertState
    new: AlertState
    at: float
    active_since: float  # when it went pending (or firing, for a rule without ``for``)
    value: float | None
    labels: Mapping[str, str]
    summary: str = ""

    @property
    def key(self) -> str:
        """See ``alert_key``."""
        return alert_key(self.rule, self.node_id, self.instance)

    @property
    def notifies(self) -> bool:
        """Whether people hear about it: it started firing, or it resolved. Returns from ``unknown`` are silent."""
        return self.new == "resolved" or (self.new == "firing" and self.old in ("inactive", "pending"))

    def to_dict(self) -> dict[str, Any]:
        """The transition as plain data: one row of the alert history, one item of an ``alert`` message."""
        return {
            "alertname": self.rule,
            "node_id": self.node_id,
            "instance": self.instance,
            "severity": self.severity,
            "old": self.old,
            "new": self.new,
            "changed_at": self.at,
            "active_since_at": self.active_since,
            "value": self.value,
            "labels": dict(self.labels),
            "summary": self.summary,
        }


@dataclass(slots=True)
class AlertInstance:
    """The engine's mutable record of one live alert instance."""

    rule: Rule
    node_id: str
    key: str  # the flat metric key it watches ("" for liveness and reboot rules)
    instance: str
    state: AlertState
    active_since: float
    prior: AlertState | None = None  # while unknown: the state it was in before its node went quiet
    fired_at: float | None = None
    last_true_at: float | None = None  # last sample that kept it active (for keep_firing_for)
    clear_since: float | None = None  # first sample of the current run of clear samples (for clear_for)
    value: float | None = None
    due: float | None = None  # a timer (liveness and reboot rules), wall time
    seen: int = 0  # the node's sample count when last judged, to find metrics gone from samples
    absent: int = 0  # samples in a row without its metric

    def transition(self, old: AlertState, new: AlertState, at: float, labels: Mapping[str, str]) -> AlertTransition:
        """The value announcing ``old -> new``."""
        return AlertTransition(
            rule=self.rule.name,
            node_id=self.node_id,
            instance=self.instance,
            severity=self.rule.severity,
            old=old,
            new=new,
            at=at,
            active_since=self.active_since,
            value=self.value,
            labels=labels,
            summary=self.rule.summary,
        )

    def view(self) -> dict[str, Any]:
        """The instance as ``GET /api/v1/alerts`` shows it."""
        return {
            "alertname": self.rule.name,
            "node_id": self.node_id,
            "instance": self.instance,
            "severity": self.rule.severity,
            "state": self.state,
            "active_since_at": self.active_since,
            "fired_at": self.fired_at,
            "value": self.value,
            "condition": self.rule.describe(),
            "summary": self.rule.summary,
        }


@dataclass(slots=True)
class NodeAlerts:
    """The engine's record of one node: its labels, liveness, live alerts and shared per-key plans."""

    node_id: str
    labels: Mapping[str, str]
    plan: dict[str, KeyPlan]
    rules: frozenset[int] = frozenset()  # indices of the metric rules whose selectors match the node
    liveness: NodeState = "online"
    instances: dict[str, AlertInstance] = field(default_factory=dict)
    previous: dict[str, float] = field(default_factory=dict)  # last value of each increase() metric
    samples: int = 0


def instance_to_dict(inst: AlertInstance) -> dict[str, Any]:
    """Plain data for the store: the rule by name, every timestamp as wall time."""
    return {
        "rule": inst.rule.name,
        "key": inst.key,
        "instance": inst.instance,
        "state": inst.state,
        "prior": inst.prior,
        "active_since": inst.active_since,
        "fired_at": inst.fired_at,
        "last_true_at": inst.last_true_at,
        "clear_since": inst.clear_since,
        "value": inst.value,
        "due": inst.due,
    }


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertStateError(f"alert state: key {key!r}: expected a number or null, got {value!r}")
    return float(value)


def instance_from_dict(data: Mapping[str, Any], rule: Rule, node_id: str) -> AlertInstance:
    """The inverse of ``instance_to_dict``; raises ``AlertStateError`` naming the bad key."""
    state = data.get("state")
    prior = data.get("prior")
    if state not in LIVE_STATES or prior not in (None, "pending", "firing"):
        raise AlertStateError(
            f"alert state: expected state in {LIVE_STATES} and prior pending/firing/null, got {data!r}"
        )
    key, instance = data.get("key"), data.get("instance")
    if not isinstance(key, str) or not isinstance(instance, str):
        raise AlertStateError(f"alert state: expected string key and instance, got {key!r} and {instance!r}")
    active_since = _number(data, "active_since")
    if active_since is None:
        raise AlertStateError(f"alert state: key 'active_since': expected a number, got {data!r}")
    return AlertInstance(
        rule=rule,
        node_id=node_id,
        key=key,
        instance=instance,
        state=cast(AlertState, state),
        active_since=active_since,
        prior=cast("AlertState | None", prior),
        fired_at=_number(data, "fired_at"),
        last_true_at=_number(data, "last_true_at"),
        clear_since=_number(data, "clear_since"),
        value=_number(data, "value"),
        due=_number(data, "due"),
    )


@dataclass(frozen=True, slots=True)
class SavedNode:
    """One node of a saved state document, checked; its alerts are parsed once their rules are known."""

    node_id: str
    labels: dict[str, str]
    liveness: Literal["online", "stale", "offline"]
    previous: dict[str, float]
    alerts: list[Mapping[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as ``parse_saved_node`` reads it: every field by its name, copied."""
        return asdict(self)


def parse_saved_node(data: object) -> SavedNode:
    """A node of a saved state document; raises ``AlertStateError`` on any other shape."""
    if not isinstance(data, Mapping):
        raise AlertStateError(f"alert state: expected a node table, got {data!r:.80}")
    node_id, labels, liveness = data.get("node_id"), data.get("labels", {}), data.get("liveness", "online")
    previous, alerts = data.get("previous", {}), data.get("alerts", [])
    if (
        not isinstance(node_id, str)
        or not isinstance(labels, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        or liveness not in ("online", "stale", "offline")
        or not isinstance(previous, Mapping)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in previous.values())
        or not isinstance(alerts, list)
        or not all(isinstance(a, Mapping) for a in alerts)
    ):
        raise AlertStateError(f"alert state: expected node_id, labels, liveness, previous, alerts, got {data!r:.200}")
    return SavedNode(
        node_id=node_id,
        labels=dict(labels),
        liveness=liveness,
        previous={str(k): float(v) for k, v in previous.items()},
        alerts=list(alerts),
    )


def parse_state(state: Mapping[str, Any]) -> list[SavedNode]:
    """The nodes of a document written by ``AlertEngine.to_state``."""
    nodes = state.get("nodes")
    if state.get("version") != STATE_FORMAT_VERSION or not isinstance(nodes, list):
        raise AlertStateError(f"alert state: expected version {STATE_FORMAT_VERSION} with a nodes list")
    return [parse_saved_node(node) for node in nodes]
