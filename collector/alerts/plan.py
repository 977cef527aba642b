"""Rules compiled for one flat metric key: the engine's per-key plan, built once and shared by many nodes.

A ``KeyPlan`` is ``(low, high, entries, counter)``: every rule on the key (for one set of
matching selectors) with its tests compiled, the quiet band ``low < value < high``
inside which none of them can hold, so a heartbeat that breaks nothing costs one dict
look-up and two comparisons per key, and whether an ``increase()`` rule is on the key
(a node with live alerts judges a counter's rise on every sample, quiet or not).
Not here: alert state (``collector.alerts.engine``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from collector.alerts.rules import Rule
from collector.alerts.samples import split_key

# Flat keys cached per selector group. Mount and sensor names come from peers: past this many
# distinct keys the plan of a new key is worked out each time instead of being cached.
MAX_CACHED_KEYS = 100_000

_TESTS: dict[str, Callable[[float], Callable[[float], bool]]] = {
    # ``value > t`` is ``t < value``: a bound method of the float threshold, the cheapest call there is.
    ">": lambda t: t.__lt__,
    ">=": lambda t: t.__le__,
    "<": lambda t: t.__gt__,
    "<=": lambda t: t.__ge__,
    "==": lambda t: t.__eq__,
    "!=": lambda t: t.__ne__,
}


def slot_of(rule_name: str, key: str) -> str:
    """The key of one alert instance in a node's instance map."""
    return rule_name + "\x00" + key


@dataclass(frozen=True, slots=True)
class Entry:
    """One rule as it applies to one flat key: its tests compiled, its instance slot precomputed."""

    rule: Rule
    key: str
    instance: str
    slot: str
    holds: Callable[[float], bool]
    in_band: Callable[[float], bool]  # still active once firing: the clear threshold's side


KeyPlan: TypeAlias = tuple[float, float, tuple[Entry, ...], bool]


def compile_key(key: str, rules: Iterable[Rule]) -> KeyPlan:
    """The plan of ``key`` under ``rules`` (the metric rules on its metric that cover the node)."""
    _, instance = split_key(key)
    entries = tuple(
        Entry(
            rule=rule,
            key=key,
            instance=instance,
            slot=slot_of(rule.name, key),
            holds=_TESTS[rule.op](rule.threshold),
            in_band=_TESTS[rule.op](rule.clear_threshold),
        )
        for rule in sorted(rules, key=lambda r: not r.increase)  # increase() first: its rise is computed once
    )
    counter = any(entry.rule.increase for entry in entries)
    low, high = -math.inf, math.inf
    for entry in entries:
        rule = entry.rule
        if rule.increase:
            continue  # judged when the counter moves (AlertEngine.observe), not by the band
        if rule.op in ("==", "!="):
            return math.inf, -math.inf, entries, counter  # no band: always judged
        if rule.op in (">", ">="):
            high = min(high, rule.threshold)
        else:
            low = max(low, rule.threshold)
    return low, high, entries, counter
