"""Alert rules: read from the ``[alerts]`` TOML table, checked at start, plus the built-in rules.

A rule is one condition on one metric (``cpu_percent > 90``, ``increase(dropped_samples) > 0``),
how long it must hold (``for``), how it clears (``clear_threshold``: a value band, and
``clear_for``: a time band, so a value hovering at the threshold does not flap), how long
it keeps firing after it clears (``keep_firing_for``, as in Prometheus) and which nodes it
covers (id globs and label globs). Two rule kinds are not metric tests: ``offline``
(liveness) and ``reboot`` (a changed boot time).

Built-in rules are on by default; ``[alerts.builtin.<name>]`` overrides any of their keys
or sets ``enabled = false``. A bad rule raises ``AlertConfigError`` naming the rule, the
key and what it accepts. Not here: evaluation (``collector.alerts.engine``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from collector.alerts.samples import ALL_METRICS, FAMILY_METRICS, SCALAR_METRICS
from collector.alerts.settings import AlertConfigError, TableReader, label_selector_matches, node_selector_matches

Severity: TypeAlias = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
RuleKind: TypeAlias = Literal["metric", "offline", "reboot"]
OPERATORS = (">=", "<=", "==", "!=", ">", "<")

_CONDITION = re.compile(
    r"^\s*(?:increase\(\s*(?P<inc>[a-z0-9_]+)\s*\)|(?P<metric>[a-z0-9_]+))\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<threshold>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$"
)
_SELECTOR_KEYS = ("nodes", "exclude_nodes", "labels")
_COMMON_KEYS = ("name", "severity", "summary", *_SELECTOR_KEYS)
_METRIC_KEYS = (*_COMMON_KEYS, "condition", "for", "clear_threshold", "clear_for", "keep_firing_for")
_KEYS_BY_KIND: dict[RuleKind, tuple[str, ...]] = {
    "metric": _METRIC_KEYS,
    "offline": (*_COMMON_KEYS, "for", "stale_for"),
    "reboot": (*_COMMON_KEYS, "keep_firing_for"),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One checked rule; ``threshold``/``clear_threshold`` apply to metric rules only."""

    name: str
    kind: RuleKind
    severity: Severity
    summary: str = ""
    metric: str = ""  # a scalar metric or a family (one alert per instance)
    op: str = ">"
    threshold: float = 0.0
    clear_threshold: float = 0.0  # the alert stays active while ``value op clear_threshold``
    increase: bool = False  # test the rise since the node's previous sample (a counter; a drop is a reset)
    for_s: float = 0.0
    clear_for_s: float = 0.0  # the clear condition must hold this long before pending or firing ends
    keep_firing_for_s: float = 0.0  # firing only: stay firing this long after the condition last held
    stale_for_s: float | None = None  # offline rule: also fire when stale this long
    nodes: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    builtin: bool = False

    @property
    def family(self) -> bool:
        """Whether the metric has instances (mounts, sensors, interfaces): one alert per instance."""
        return self.metric in FAMILY_METRICS

    def applies_to(self, node_id: str, labels: Mapping[str, str]) -> bool:
        """Whether this rule covers the node, by id globs and label globs."""
        return node_selector_matches(self.nodes, self.exclude_nodes, node_id) and label_selector_matches(
            self.labels, labels
        )

    def describe(self) -> str:
        """The condition as written, for messages and the API."""
        if self.kind != "metric":
            return self.kind
        metric = f"increase({self.metric})" if self.increase else self.metric
        return f"{metric} {self.op} {self.threshold:g}"


# The built-ins as TOML tables, so an override goes through the same checks as a user's rule.
BUILTIN_RULES: dict[str, tuple[RuleKind, dict[str, Any]]] = {
    # Offline is already ten missed intervals (docs/protocol.md section 6): no extra wait by default.
    # Stale for 5 minutes matters for slow agents (a 60 s interval is stale for 7 minutes first).
    "node_offline": ("offline", {"severity": "critical", "for": "0s", "stale_for": "5m"}),
    # Shown as firing for 15 minutes, then resolved by itself: a reboot is an event, not a state.
    "node_rebooted": ("reboot", {"severity": "warning", "keep_firing_for": "15m"}),
    # The agent's backlog overflowed: samples are lost for good. Resolves 30 minutes after the last loss.
    "agent_dropped_samples": (
        "metric",
        {"severity": "warning", "condition": "increase(dropped_samples) > 0", "keep_firing_for": "30m"},
    ),
    # ext4 keeps 5 % for root, so at 90 % used (df's Use%) users have ~5 % left. Clears below 85 %.
    "disk_full": (
        "metric",
        {"severity": "warning", "condition": "disk_fullness_percent >= 90", "for": "5m", "clear_threshold": 85},
    ),
    # NTP keeps hosts within milliseconds and the estimate errs by network delay only, so 2 s is a broken
    # clock: its samples land seconds off in history and its TLS and token expiry checks go wrong.
    "clock_skew": (
        "metric",
        {"severity": "warning", "condition": "clock_skew_abs_s > 2", "for": "5m", "clear_threshold": 1},
    ),
}


def _parse_condition(reader: TableReader) -> tuple[str, str, float, bool]:
    condition = reader.string("condition")
    match = _CONDITION.match(condition)
    if match is None:
        reader.fail(
            "condition",
            "expected '<metric> <op> <number>' like 'cpu_percent > 90' or 'increase(dropped_samples) > 0',"
            f" with op one of {' '.join(OPERATORS)}",
            repr(condition),
        )
    metric = match["inc"] or match["metric"]
    if metric not in SCALAR_METRICS and metric not in FAMILY_METRICS:
        reader.fail("condition", f"expected a metric, one of {', '.join(ALL_METRICS)}", repr(metric))
    increase = match["inc"] is not None
    if increase and metric in FAMILY_METRICS:
        reader.fail("condition", "expected increase() of a scalar counter like dropped_samples", repr(metric))
    return metric, match["op"], float(match["threshold"]), increase


def _clear_threshold(reader: TableReader, op: str, threshold: float) -> float:
    clear = reader.number("clear_threshold")
    if clear is None:
        return threshold
    # The clear band must lie on the quiet side of the threshold, or the alert could never clear.
    if op in (">", ">=") and clear > threshold:
        reader.fail("clear_threshold", f"expected a number at most the threshold {threshold:g}", f"{clear:g}")
    if op in ("<", "<=") and clear < threshold:
        reader.fail("clear_threshold", f"expected a number at least the threshold {threshold:g}", f"{clear:g}")
    if op in ("==", "!="):
        reader.fail("clear_threshold", "expected no clear_threshold with == or != (use clear_for)", f"{clear:g}")
    return clear


def parse_rule(table: Mapping[str, Any], *, kind: RuleKind = "metric", name: str | None = None) -> Rule:
    """One rule from its TOML table; raises ``AlertConfigError`` on the first bad key."""
    builtin = name is not None
    allowed = _KEYS_BY_KIND[kind] + (("enabled",) if builtin else ())
    reader = TableReader("alert rule", table, (k for k in allowed if not (builtin and k == "name")), name=name)
    rule_name = name if name is not None else reader.name_key()
    common: dict[str, Any] = {
        "name": rule_name,
        "kind": kind,
        "severity": cast(Severity, reader.string("severity", "warning", choices=SEVERITIES)),
        "summary": reader.string("summary", ""),
        "nodes": reader.globs("nodes"),
        "exclude_nodes": reader.globs("exclude_nodes"),
        "labels": reader.label_map("labels"),
        "builtin": builtin,
    }
    if kind == "offline":
        stale_for = reader.duration("stale_for", "0s") if reader.has("stale_for") else None
        return Rule(**common, for_s=reader.duration("for", "0s"), stale_for_s=stale_for or None)
    if kind == "reboot":
        return Rule(**common, keep_firing_for_s=reader.duration("keep_firing_for", "15m"))
    metric, op, threshold, increase = _parse_condition(reader)
    return Rule(
        **common,
        metric=metric,
        op=op,
        threshold=threshold,
        clear_threshold=_clear_threshold(reader, op, threshold),
        increase=increase,
        for_s=reader.duration("for", "0s"),
        clear_for_s=reader.duration("clear_for", "0s"),
        keep_firing_for_s=reader.duration("keep_firing_for", "0s"),
    )


def _builtin_rules(overrides: object) -> list[Rule]:
    if not isinstance(overrides, Mapping):
        raise AlertConfigError(f"alerts: key 'builtin': expected a table of built-in rules, got {overrides!r}")
    for name in overrides:
        if name not in BUILTIN_RULES:
            raise AlertConfigError(
                f"alerts.builtin: key {name!r}: expected one of {', '.join(BUILTIN_RULES)}, got an unknown rule"
            )
    rules = []
    for name, (kind, defaults) in BUILTIN_RULES.items():
        override = overrides.get(name, {})
        if not isinstance(override, Mapping):
            raise AlertConfigError(f"alerts.builtin: key {name!r}: expected a table, got {override!r}")
        table = {**defaults, **override}
        enabled = table.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise AlertConfigError(f"alert rule {name!r}: key 'enabled': expected true or false, got {enabled!r}")
        rule = parse_rule(table, kind=kind, name=name)
        if enabled:
            rules.append(rule)
    return rules


def parse_rules(alerts: Mapping[str, Any]) -> tuple[Rule, ...]:
    """Built-in rules (as overridden) then the user's ``[[alerts.rule]]`` tables, names unique."""
    rules = _builtin_rules(alerts.get("builtin", {}))
    tables = alerts.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise AlertConfigError(f"alerts: key 'rule': expected [[alerts.rule]] tables, got {tables!r}")
    seen = set(BUILTIN_RULES)
    for table in tables:
        rule = parse_rule(table)
        if rule.name in seen:
            what = "a built-in rule (override it under [alerts.builtin])" if rule.name in BUILTIN_RULES else "a rule"
            raise AlertConfigError(
                f"alert rule {rule.name!r}: key 'name': expected a unique name, got the name of {what}"
            )
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)
