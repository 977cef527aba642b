"""The metric names a rule may test, and the flat map of them built from one heartbeat.

A rule tests one metric: a numeric heartbeat field (``cpu_percent``, ``mem_percent``,
``swap_percent``, ``process_count``... read from ``shared.messages.Heartbeat``, so a new
wire field is a new metric), a derived one (``load1_per_core``, ``clock_skew_abs_s``),
or a per-instance family such as ``disk_fullness_percent``, whose flat keys are
``"<family>:<instance>"`` (``"disk_fullness_percent:/var"``): one alert per mount.

Not here: thresholds and state (``collector.alerts.engine``). A ``Flattener`` call is the
shell's work, run once per heartbeat before ``AlertEngine.observe``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from shared.messages import Heartbeat

# Flat keys of a family are "<family>:<instance>"; instance names (mounts, sensors) may hold ':' themselves.
FAMILY_SEPARATOR = ":"
# Mount names whose flat keys a Flattener keeps, over all nodes: mounts come from peers, so past
# this many distinct names a new one's keys are built each time instead (a few per node is usual).
MAX_CACHED_MOUNTS = 100_000


def _is_number(annotation: Any) -> bool:
    """Whether a pydantic field annotation is ``int`` or ``float``, under any Optional and Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_number(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_number(args[0])
    return annotation in (int, float)


# Not alertable: a counter of the wire, and an instant (age is judged by liveness, not by rules).
_NOT_METRICS = frozenset({"seq", "sampled_at"})
HEARTBEAT_METRICS: tuple[str, ...] = tuple(
    name for name, info in Heartbeat.model_fields.items() if name not in _NOT_METRICS and _is_number(info.annotation)
)
DERIVED_METRICS: tuple[str, ...] = (
    "load1",
    "load5",
    "load15",
    "load1_per_core",  # load1 / logical CPUs (from the hello's facts), the usual "is it overloaded" number
    "cpu_max_core_percent",  # the busiest core: one pegged thread hides in the average
    "clock_skew_s",  # agent clock minus collector clock (NodeStatus.clock_skew_s)
    "clock_skew_abs_s",  # its magnitude, so one rule covers fast and slow clocks
    "dropped_samples",  # samples the agent dropped from its backlog (cumulative; use increase())
    "missing_samples",  # seq gaps the collector saw (cumulative; use increase())
)
FAMILY_METRICS: tuple[str, ...] = (
    "disk_fullness_percent",  # used / (used + available) like df when available is sent, else used / total
    "disk_used_bytes",
    "disk_available_bytes",
    "temperature_celsius",
    "net_interface_rx_bytes_per_s",
    "net_interface_tx_bytes_per_s",
)
SCALAR_METRICS: frozenset[str] = frozenset(HEARTBEAT_METRICS + DERIVED_METRICS)
ALL_METRICS: tuple[str, ...] = tuple(sorted(SCALAR_METRICS)) + FAMILY_METRICS


def split_key(key: str) -> tuple[str, str]:
    """``(metric, instance)`` of a flat key; the instance is "" for a scalar metric."""
    if key in SCALAR_METRICS:
        return key, ""
    family, _, instance = key.partition(FAMILY_SEPARATOR)
    return family, instance


class Flattener:
    """Builds the flat map of only the metrics some rule tests: half the keys cost half the time, twice.

    ``Flattener(engine.watched_metrics)`` is built once; calling it once per heartbeat
    is the shell's work before ``AlertEngine.observe``. Absent fields stay absent:
    "not measured" is never zero, and a rule on an absent metric is not judged.
    """

    def __init__(self, metrics: Iterable[str] = ALL_METRICS) -> None:
        wanted = frozenset(metrics)
        self._fields = tuple(name for name in HEARTBEAT_METRICS if name in wanted)
        self._load = tuple((name, i) for i, name in enumerate(("load1", "load5", "load15")) if name in wanted)
        self._load_per_core = "load1_per_core" in wanted
        self._max_core = "cpu_max_core_percent" in wanted
        self._skew = "clock_skew_s" in wanted or "clock_skew_abs_s" in wanted
        self._counters = "dropped_samples" in wanted or "missing_samples" in wanted
        self._fullness = "disk_fullness_percent" in wanted
        self._disk_bytes = tuple(
            (name + FAMILY_SEPARATOR, index)
            for name, index in (("disk_used_bytes", 1), ("disk_available_bytes", 2))
            if name in wanted
        )
        self._temperatures = "temperature_celsius" in wanted
        self._interfaces = any(name.startswith("net_interface_") and name in wanted for name in FAMILY_METRICS)
        self._families = bool(wanted & set(FAMILY_METRICS))
        self._any_load = bool(self._load) or self._load_per_core
        # mount -> its fullness key, built once: a new key string each heartbeat costs a concatenation
        # and a hash, and the engine's plan look-up hashes it again (the built-in disk_full rule).
        self._fullness_keys: dict[str, str] = {}

    def __call__(
        self,
        heartbeat: Heartbeat,
        *,
        cpu_count: int | None = None,
        clock_skew_s: float | None = None,
        dropped_samples: int | None = None,
        missing_samples: int | None = None,
    ) -> dict[str, float]:
        """The wanted metrics of one heartbeat, plus what the node's status adds."""
        # A model's fields live in its __dict__ (pydantic's documented storage); one look-up each is
        # half the cost of getattr, and ints stay ints: every rule compares them as numbers.
        fields = heartbeat.__dict__
        values: dict[str, float] = (
            {name: fields[name] for name in self._fields if fields[name] is not None} if self._fields else {}
        )
        if self._any_load:
            load_avg = heartbeat.load_avg
            if load_avg is not None:
                for name, index in self._load:
                    values[name] = load_avg[index]
                if self._load_per_core and cpu_count:
                    values["load1_per_core"] = load_avg[0] / cpu_count
        if self._max_core and heartbeat.cpu_per_core_percent:
            values["cpu_max_core_percent"] = max(heartbeat.cpu_per_core_percent)
        if self._skew and clock_skew_s is not None:
            values["clock_skew_s"] = clock_skew_s
            values["clock_skew_abs_s"] = abs(clock_skew_s)
        if self._counters:
            if dropped_samples is not None:
                values["dropped_samples"] = dropped_samples
            if missing_samples is not None:
                values["missing_samples"] = missing_samples
        if self._families:
            self._flatten_families(heartbeat, values)
        return values

    def _flatten_families(self, heartbeat: Heartbeat, values: dict[str, float]) -> None:
        """One flat key per mount, sensor and interface."""
        if (self._fullness or self._disk_bytes) and heartbeat.disks:
            self._flatten_disks(heartbeat.disks, values)
        if self._temperatures and heartbeat.temperatures:
            for sensor, celsius in heartbeat.temperatures.items():
                values["temperature_celsius:" + sensor] = celsius
        if self._interfaces and heartbeat.net_interfaces:
            for interface, (rx, tx) in heartbeat.net_interfaces.items():
                values["net_interface_rx_bytes_per_s:" + interface] = rx
                values["net_interface_tx_bytes_per_s:" + interface] = tx

    def _flatten_disks(self, disks: Mapping[str, list[int]], values: dict[str, float]) -> None:
        fullness, byte_keys, known = self._fullness, self._disk_bytes, self._fullness_keys
        for mount, pair in disks.items():
            if fullness:
                # df's Use%: used / (used + available); blocks reserved for root are neither.
                room = pair[1] + pair[2] if len(pair) > 2 else pair[0]
                if room > 0:
                    values[known.get(mount) or self._fullness_key(mount)] = 100.0 * pair[1] / room
            for prefix, index in byte_keys:
                if index < len(pair):
                    values[prefix + mount] = float(pair[index])

    def _fullness_key(self, mount: str) -> str:
        """A mount's fullness key, cached up to ``MAX_CACHED_MOUNTS`` mounts (the names come from peers)."""
        key = "disk_fullness_percent:" + mount
        if len(self._fullness_keys) < MAX_CACHED_MOUNTS:
            self._fullness_keys[mount] = key
        return key
