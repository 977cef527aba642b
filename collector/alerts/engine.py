"""The alert engine: a pure state machine fed samples, liveness changes and reboots, returning alert transitions.

Like ``collector.cache.NodeCache`` it does no I/O and reads no clock: every call takes
``now``. Unlike the cache, ``now`` is wall time (epoch seconds), because alert state
outlives the process: it is saved with ``to_state`` and loaded with ``restore`` after a
restart, and a monotonic instant means nothing to the next process. A wall-clock step
shortens or lengthens a running ``for`` by that step, nothing worse.

States: inactive -> pending -> firing -> resolved, and ``unknown`` while the node is
stale or offline (nothing fires or resolves on stale data; the next sample judges the
alert again). docs/alerts.md has the semantics in full.

Cost: one heartbeat is one pass over its flat values with one dict look-up each; the
rules a key concerns (for this node's selectors) are found once per key and cached per
set of matching rules, and a value that breaks no rule leaves nothing behind. A node
with a live alert judges in full only the keys of its live alerts (and counters): one
pending alert no longer sends every other key of the node down the slow path.
Not here: how one value moves one alert (``collector.alerts.judge``), notifications
(``collector.alerts.notify``) or storage.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from collector.alerts.judge import fire, increase, judge, judge_absent, start
from collector.alerts.model import (
    NO_LABELS,
    STATE_FORMAT_VERSION,
    AlertInstance,
    AlertState,
    AlertTransition,
    NodeAlerts,
    SavedNode,
    alert_key,
    instance_from_dict,
    instance_to_dict,
    parse_state,
)
from collector.alerts.plan import MAX_CACHED_KEYS, Entry, KeyPlan, compile_key, slot_of
from collector.alerts.rules import Rule
from collector.alerts.samples import split_key
from shared.messages import NodeState


class AlertEngine:
    """Alert instances of every node under ``rules``; each method returns the transitions it caused."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._by_name = {rule.name: rule for rule in self.rules}
        self._metric_rules = [r for r in self.rules if r.kind == "metric"]
        self._by_metric: dict[str, list[int]] = {}
        for index, rule in enumerate(self._metric_rules):
            self._by_metric.setdefault(rule.metric, []).append(index)
        self._counters = tuple(dict.fromkeys(r.metric for r in self._metric_rules if r.increase))
        self._offline = [r for r in self.rules if r.kind == "offline"]
        self._reboot = [r for r in self.rules if r.kind == "reboot"]
        self._nodes: dict[str, NodeAlerts] = {}
        self._plans: dict[tuple[int, ...], dict[str, KeyPlan]] = {}
        self._heap: list[tuple[float, str, str]] = []

    @property
    def watched_metrics(self) -> frozenset[str]:
        """The metrics some rule tests: build the shell's ``Flattener`` from these."""
        return frozenset(self._by_metric)

    # ---- inputs --------------------------------------------------------------------------

    def observe(
        self, node_id: str, labels: Mapping[str, str], values: Mapping[str, float], now: float
    ) -> list[AlertTransition]:
        """Judge one fresh sample (from a ``samples.Flattener``); a sample also means the node is online."""
        node = self._nodes.get(node_id)
        if node is None or node.labels is not labels:  # else ``_node`` would return it: one call less
            node = self._node(node_id, labels)
        out: list[AlertTransition] = []
        if node.liveness != "online":
            self._set_liveness(node, "online", now, out)
        node.samples += 1
        plan = node.plan
        instances = node.instances
        live = bool(instances)  # a live alert must be judged even on a quiet value, to clear
        # The keys of live metric alerts: only judging a key creates or ends its alert, and each key
        # comes once, so this stays true for the keys still ahead in the loop.
        live_keys = {inst.key for inst in instances.values()} if live else ()
        for key, value in values.items():
            key_plan = plan.get(key)
            if key_plan is None:
                key_plan = self._key_plan(node, key)
            low, high, entries, counter = key_plan
            # The quiet band: no rule on this key can hold for a value strictly inside it, so the key
            # is skipped after one look-up and two comparisons, unless it has a live alert to clear,
            # or it is a counter and the node has live alerts (its rise is then judged every sample).
            if low < value < high and not (live and (counter or key in live_keys)):
                continue
            self._judge_key(node, entries, key, value, now=now, out=out)
        if live:
            judge_absent(node, now, out)
        elif self._counters:
            # increase() rules: a counter that did not move cannot have risen. (With live alerts,
            # the loop above judged every counter already.)
            previous = node.previous
            for key in self._counters:
                count = values.get(key)
                if count is not None and count != previous.get(key):
                    entries = (plan.get(key) or self._key_plan(node, key))[2]
                    self._judge_key(node, entries, key, count, now=now, out=out)
        return out

    def liveness(
        self, node_id: str, state: NodeState, now: float, labels: Mapping[str, str] | None = None
    ) -> list[AlertTransition]:
        """The cache moved the node to ``state`` (from ``NodeCache.expire``, ``close`` or a hello).

        ``labels``, the node's labels now (None: unchanged): a hello may bring new ones, and this
        transition and every later one is grouped and routed by them.
        """
        node = self._node(node_id, labels)
        out: list[AlertTransition] = []
        self._set_liveness(node, state, now, out)
        return out

    def reboot(self, node_id: str, now: float, labels: Mapping[str, str] | None = None) -> list[AlertTransition]:
        """The node's boot time changed; the reboot rule fires and resolves by itself after ``keep_firing_for``.

        ``labels`` as for ``liveness``: the node rebooted, perhaps relabelled, and the alert carries the new ones.
        """
        node = self._node(node_id, labels)
        out: list[AlertTransition] = []
        for rule in self._reboot:
            if not rule.applies_to(node_id, node.labels):
                continue
            slot = slot_of(rule.name, "")
            inst = node.instances.get(slot)
            if inst is None:
                inst = AlertInstance(rule, node_id, "", "", "firing", active_since=now, fired_at=now)
                node.instances[slot] = inst
                out.append(inst.transition("inactive", "firing", now, node.labels))
            self._arm(inst, slot, now + rule.keep_firing_for_s)
        return out

    def forget(self, node_id: str, now: float) -> list[AlertTransition]:
        """The cache forgot the node: its alerts end (resolved if they had fired), so none stays stuck."""
        node = self._nodes.pop(node_id, None)
        if node is None:
            return []
        out = []
        for inst in node.instances.values():
            fired = inst.fired_at is not None
            out.append(inst.transition(inst.state, "resolved" if fired else "inactive", now, node.labels))
        return out

    def next_due(self) -> float | None:
        """The wall time ``tick`` should next be called (liveness ``for`` and reboot timers only)."""
        while self._heap:
            due, node_id, slot = self._heap[0]
            inst = self._instance(node_id, slot)
            if inst is not None and inst.due == due:
                return due
            heapq.heappop(self._heap)
        return None

    def tick(self, now: float) -> list[AlertTransition]:
        """Apply every timer due by ``now``: offline alerts start firing, reboot alerts resolve."""
        out: list[AlertTransition] = []
        while self._heap and self._heap[0][0] <= now:
            due, node_id, slot = heapq.heappop(self._heap)
            inst = self._instance(node_id, slot)
            if inst is None or inst.due != due:
                continue
            inst.due = None
            node = self._nodes[node_id]
            if inst.rule.kind == "reboot":
                del node.instances[slot]
                out.append(inst.transition("firing", "resolved", now, node.labels))
            elif inst.state == "pending":
                fire(node, inst, due, out)
        return out

    # ---- views and persistence -----------------------------------------------------------

    def alerts(self) -> list[AlertInstance]:
        """Every live alert instance (pending, firing or unknown), by node id then rule."""
        return [i for _, n in sorted(self._nodes.items()) for _, i in sorted(n.instances.items())]

    def to_state(self) -> dict[str, Any]:
        """Everything a restart needs, as plain JSON-able data (the store keeps it as one document)."""
        saved = [
            SavedNode(
                node.node_id,
                dict(node.labels),
                node.liveness,
                dict(node.previous),
                [instance_to_dict(i) for i in node.instances.values()],
            ).to_dict()
            for node in self._nodes.values()
            if node.instances or node.previous or node.liveness != "online"
        ]
        return {"version": STATE_FORMAT_VERSION, "nodes": saved}

    def restore(self, state: Mapping[str, Any]) -> list[str]:
        """Load ``to_state``'s output without emitting transitions (so nothing is notified twice).

        Returns the keys of saved alerts whose rule no longer exists; they are dropped.
        Raises ``AlertStateError`` (a ValueError) on a document of another shape.
        """
        dropped: list[str] = []
        loaded: list[tuple[SavedNode, list[AlertInstance]]] = []
        for saved in parse_state(state):  # parse everything first: a bad document changes nothing
            instances = []
            for data in saved.alerts:
                rule = self._by_name.get(str(data.get("rule")))
                if rule is None:
                    dropped.append(alert_key(str(data.get("rule")), saved.node_id, str(data.get("instance", ""))))
                else:
                    instances.append(instance_from_dict(data, rule, saved.node_id))
            loaded.append((saved, instances))
        for saved, instances in loaded:
            node = self._enter(saved.node_id, saved.labels)
            node.liveness, node.previous = saved.liveness, saved.previous
            for inst in instances:
                slot = slot_of(inst.rule.name, inst.key)
                node.instances[slot] = inst
                if inst.due is not None:
                    heapq.heappush(self._heap, (inst.due, node.node_id, slot))
        return dropped

    # ---- internals -----------------------------------------------------------------------

    def _node(self, node_id: str, labels: Mapping[str, str] | None) -> NodeAlerts:
        """The node's record, entered or re-labelled unless ``labels`` is None or the mapping it already has."""
        node = self._nodes.get(node_id)
        if node is None:
            return self._enter(node_id, NO_LABELS if labels is None else labels)
        if labels is not None and node.labels is not labels:
            return self._enter(node_id, labels)
        return node

    def _enter(self, node_id: str, labels: Mapping[str, str]) -> NodeAlerts:
        """Create or re-label a node: work out which metric rules cover it, share the plan of that set."""
        node = self._nodes.get(node_id)
        if node is not None and node.labels == labels:
            node.labels = labels  # the same labels in a new mapping: next time ``is`` will do
            return node
        group = tuple(i for i, r in enumerate(self._metric_rules) if r.applies_to(node_id, labels))
        plan = self._plans.setdefault(group, {})
        if node is None:
            node = self._nodes[node_id] = NodeAlerts(node_id, labels, plan)
        else:
            node.labels, node.plan = labels, plan
        node.rules = frozenset(group)
        return node

    def _judge_key(
        self,
        node: NodeAlerts,
        entries: tuple[Entry, ...],
        key: str,
        value: float,
        *,
        now: float,
        out: list[AlertTransition],
    ) -> None:
        """Judge every rule on ``key`` against ``value``: the slow path, for values outside the quiet band."""
        instances = node.instances
        rise = increase(node, key, value) if entries and entries[0].rule.increase else None
        for entry in entries:
            tested = value
            if entry.rule.increase:
                if rise is None:
                    continue
                tested = rise
            inst = instances.get(entry.slot)
            if inst is None:
                if entry.holds(tested):
                    start(node, entry, tested, now, out)
            else:
                judge(node, inst, entry, tested, now=now, out=out)

    def _key_plan(self, node: NodeAlerts, key: str) -> KeyPlan:
        metric, _ = split_key(key)
        rules = [self._metric_rules[i] for i in self._by_metric.get(metric, ()) if i in node.rules]
        key_plan = compile_key(key, rules)
        if len(node.plan) < MAX_CACHED_KEYS:
            node.plan[key] = key_plan
        return key_plan

    def _set_liveness(self, node: NodeAlerts, state: NodeState, now: float, out: list[AlertTransition]) -> None:
        if node.liveness == state:
            return
        node.liveness = state
        if state != "online":
            for inst in node.instances.values():
                if inst.rule.kind == "metric" and inst.state != "unknown":
                    inst.prior, old, inst.state = inst.state, inst.state, "unknown"
                    out.append(inst.transition(old, "unknown", now, node.labels))
        for rule in self._offline:
            if rule.applies_to(node.node_id, node.labels):
                self._offline_rule(node, rule, state, now, out)

    def _offline_rule(
        self, node: NodeAlerts, rule: Rule, state: NodeState, now: float, out: list[AlertTransition]
    ) -> None:
        slot = slot_of(rule.name, "")
        inst = node.instances.get(slot)
        if state == "online":
            if inst is not None:
                del node.instances[slot]
                new: AlertState = "resolved" if inst.state == "firing" else "inactive"
                out.append(inst.transition(inst.state, new, now, node.labels))
            return
        wait_s = rule.for_s if state == "offline" else rule.stale_for_s
        if wait_s is None or (inst is not None and inst.state == "firing"):
            return
        created = inst is None
        if inst is None:
            inst = node.instances[slot] = AlertInstance(rule, node.node_id, "", "", "pending", active_since=now)
        due = now + wait_s if inst.due is None else min(inst.due, now + wait_s)
        if due <= now:
            inst.due = None
            fire(node, inst, now, out, old="inactive" if created else "pending")
            return
        if created:
            out.append(inst.transition("inactive", "pending", now, node.labels))
        if due != inst.due:
            self._arm(inst, slot, due)

    def _arm(self, inst: AlertInstance, slot: str, due: float) -> None:
        inst.due = due
        heapq.heappush(self._heap, (due, inst.node_id, slot))

    def _instance(self, node_id: str, slot: str) -> AlertInstance | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.instances.get(slot)
