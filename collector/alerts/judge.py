"""How one live metric alert moves on one fresh value: the rules of section 2 of docs/alerts.md, as functions.

``collector.alerts.engine`` finds which instances a sample concerns; these functions move
them (inactive -> pending -> firing -> resolved, and back from ``unknown``) and append
the transitions to ``out``. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collector.alerts.model import AlertInstance, AlertState, AlertTransition, NodeAlerts
from collector.alerts.plan import Entry, slot_of

# A metric missing from this many samples in a row is gone (an unmounted disk): its alert may clear.
# Three, like the three missed intervals that make a node stale; one missing sample is noise.
ABSENT_SAMPLES_TO_CLEAR = 3


def increase(node: NodeAlerts, key: str, value: float) -> float | None:
    """The rise of a counter since the previous sample; a fall is a restart, so the rise is the value."""
    previous = node.previous.get(key)
    node.previous[key] = value
    if previous is None:
        return None  # the first value is a baseline, not a rise
    return value - previous if value >= previous else value


def start(node: NodeAlerts, entry: Entry, value: float, now: float, out: list[AlertTransition]) -> None:
    """The condition holds for an alert with no instance: pending, or firing at once without ``for``."""
    inst = AlertInstance(
        entry.rule, node.node_id, entry.key, entry.instance, "pending", now, last_true_at=now, value=value
    )
    inst.seen = node.samples
    node.instances[entry.slot] = inst
    if entry.rule.for_s <= 0:
        fire(node, inst, now, out, old="inactive")
    else:
        out.append(inst.transition("inactive", "pending", now, node.labels))


def judge(
    node: NodeAlerts, inst: AlertInstance, entry: Entry, value: float, *, now: float, out: list[AlertTransition]
) -> None:
    """One fresh value for a live instance: keep it, promote it, or end it."""
    inst.seen = node.samples
    inst.absent = 0
    inst.value = value
    old = inst.state
    if old == "unknown":
        # Fresh data after a quiet spell: judged as what it was, with the clocks of the quiet spell reset.
        inst.state = inst.prior or "pending"
        inst.prior = None
        inst.clear_since = None
        if inst.state == "pending":
            inst.active_since = now
    held = entry.holds(value)
    active = held or (inst.state == "firing" and entry.in_band(value))
    step(node, inst, active=active, held=held, now=now, old=old, out=out)


def step(
    node: NodeAlerts,
    inst: AlertInstance,
    *,
    active: bool,
    held: bool,
    now: float,
    old: AlertState,
    out: list[AlertTransition],
) -> None:
    """Apply one judgement: ``active`` keeps it (and may promote it), otherwise the clear clocks run."""
    rule = inst.rule
    if active:
        inst.last_true_at = now
        inst.clear_since = None
        if inst.state == "pending" and held and now - inst.active_since >= rule.for_s:
            fire(node, inst, now, out, old=old)
        elif old != inst.state:
            out.append(inst.transition(old, inst.state, now, node.labels))
        return
    if inst.clear_since is None:
        inst.clear_since = now
    cleared = now - inst.clear_since >= rule.clear_for_s
    if inst.state == "firing":
        last_true = inst.last_true_at if inst.last_true_at is not None else now
        cleared = cleared and now - last_true >= rule.keep_firing_for_s
    if cleared:
        del node.instances[slot_of(rule.name, inst.key)]
        out.append(inst.transition(old, "resolved" if inst.state == "firing" else "inactive", now, node.labels))
    elif old != inst.state:
        out.append(inst.transition(old, inst.state, now, node.labels))


def judge_absent(node: NodeAlerts, now: float, out: list[AlertTransition]) -> None:
    """Metric alerts whose metric this sample lacked: after a few such samples, the metric is gone."""
    for inst in list(node.instances.values()):
        if inst.rule.kind != "metric" or inst.seen == node.samples or inst.state == "unknown":
            continue
        inst.absent += 1
        if inst.absent >= ABSENT_SAMPLES_TO_CLEAR:
            inst.value = None
            step(node, inst, active=False, held=False, now=now, old=inst.state, out=out)


def fire(
    node: NodeAlerts, inst: AlertInstance, at: float, out: list[AlertTransition], *, old: AlertState = "pending"
) -> None:
    """Make it firing at ``at``; the transition notifies unless ``old`` is ``unknown``."""
    inst.state = "firing"
    inst.fired_at = at
    out.append(inst.transition(old, "firing", at, node.labels))
