"""Every node's metric families for /metrics, as rich as the heartbeat, named after node_exporter's.

Where a value means what a node_exporter metric means, its name is that metric's with
``nodewatch_`` in front (``nodewatch_node_filesystem_avail_bytes{node, mountpoint}``), in
snake_case (promtool refuses camelCase: ``node_memory_MemTotal_bytes`` becomes
``nodewatch_node_memory_total_bytes``). Rates and shares the agent computes (node_exporter
exports raw counters instead) get names of their own with their unit, ``_per_second`` or
``_ratio`` (0-1, not percent). One ``nodewatch_node_info`` series carries the node's facts
as labels, so no other series repeats them.

Slow-tier fields (docs/protocol.md 5.2, marked ‡) come in about one heartbeat in five:
``SlowDetails`` keeps each node's last heartbeat that carried them, and a scrape uses it
until it is three slow periods old, as the protocol says a consumer should.

Pure: rows in, families out; safe in a thread. Not here: the snapshot (``collector.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector.cache import STATES, NodeRecord
from collector.metric_table import DETAIL_GAUGES, PAIR_FAMILIES, SAMPLE_GAUGES, Reader
from shared.messages import Heartbeat, NodeFacts

# The agent reads the slow tier every 5 s, or every interval if longer (docs/protocol.md 5.2).
SLOW_PERIOD_S = 5.0
# A slow-tier value not renewed for this many periods is gone (docs/protocol.md 5.2).
SLOW_GONE_PERIODS = 3


def has_details(hb: Heartbeat) -> bool:
    """Whether a heartbeat carries a fresh slow-tier reading (the agent sends all of these together)."""
    return (
        hb.cpu_mode_percent is not None
        or hb.tcp_established is not None
        or hb.fd_allocated is not None
        or hb.disk_inodes is not None
        or hb.pressure_avg10_percent is not None
        or hb.net_interface_errors is not None
        or hb.disks_read_only is not None
    )


class SlowDetails:
    """Each node's last heartbeat frame with slow-tier details, and its ``sampled_at``."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[bytes, float]] = {}

    def note(self, record: NodeRecord | None, heartbeat: Heartbeat) -> None:
        """Keep the node's newest sample if it carries details (call after the cache applied it)."""
        if record is not None and record.last_sample_frame is not None and has_details(heartbeat):
            self.frames[record.node_id] = (record.last_sample_frame, heartbeat.sampled_at)

    def get(self, node_id: str) -> tuple[bytes, float] | None:
        """The node's details frame and when it was sampled, if any."""
        return self.frames.get(node_id)

    def prune(self, keep: Iterable[str]) -> None:
        """Drop nodes the cache forgot (called at scrape time, not per heartbeat)."""
        alive = set(keep)
        for node_id in [n for n in self.frames if n not in alive]:
            del self.frames[node_id]


def details_fresh(details_at: float, sample_at: float, interval_s: float) -> bool:
    """Whether a slow-tier reading from ``details_at`` still stands next to a sample at ``sample_at``."""
    return sample_at - details_at <= SLOW_GONE_PERIODS * max(SLOW_PERIOD_S, interval_s)


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the per-node families read: liveness, facts, the last sample and the last slow-tier details."""

    node_id: str
    state: str
    connected: bool
    last_seen_at: float | None
    clock_skew_s: float | None
    missing_samples: int
    dropped_samples: int
    facts: NodeFacts
    sample: Heartbeat | None
    details: Heartbeat | None


INFO_LABELS = ("hostname", "os", "os_release", "platform", "arch", "agent_version", "python_version")


def node_families(views: Iterable[NodeView]) -> Iterator[Metric]:
    """Every per-node family, one pass over the nodes."""
    label = ["node"]
    state = GaugeMetricFamily("nodewatch_node_state", "1 for the node's current state", labels=["node", "state"])
    info = GaugeMetricFamily(
        "nodewatch_node_info", "1, with the node's facts as labels", labels=[*label, *INFO_LABELS, "in_container"]
    )
    connected = GaugeMetricFamily("nodewatch_node_connected", "1 while the agent's websocket is open", labels=label)
    last_seen = GaugeMetricFamily(
        "nodewatch_node_last_seen_timestamp_seconds", "When the collector last heard the node", labels=label
    )
    skew = GaugeMetricFamily("nodewatch_node_clock_skew_seconds", "Agent clock minus collector clock", labels=label)
    missing = CounterMetricFamily("nodewatch_node_missing_samples", "Samples never received (seq gaps)", labels=label)
    dropped = CounterMetricFamily(
        "nodewatch_node_dropped_samples", "Samples the agent dropped from its backlog", labels=label
    )
    memory_total = GaugeMetricFamily("nodewatch_node_memory_total_bytes", "Memory size", labels=label)
    cpus = GaugeMetricFamily("nodewatch_node_cpus", "Logical CPUs", labels=label)
    boot = GaugeMetricFamily("nodewatch_node_boot_time_seconds", "When the node booted, epoch s", labels=label)
    gauges = [GaugeMetricFamily(name, text, labels=label) for name, text, _ in SAMPLE_GAUGES]
    detail_gauges = [GaugeMetricFamily(name, text, labels=label) for name, text, _ in DETAIL_GAUGES]
    pairs: list[GaugeMetricFamily | CounterMetricFamily] = [
        (CounterMetricFamily if f.counter else GaugeMetricFamily)(f.name, f.help, labels=["node", f.label])
        for f in PAIR_FAMILIES
    ]
    for view in views:
        node = [view.node_id]
        facts = view.facts
        for name in STATES:
            state.add_metric([view.node_id, name], 1.0 if view.state == name else 0.0)
        info.add_metric([*node, *(getattr(facts, key) for key in INFO_LABELS), str(facts.in_container).lower()], 1.0)
        connected.add_metric(node, 1.0 if view.connected else 0.0)
        if view.last_seen_at is not None:
            last_seen.add_metric(node, view.last_seen_at)
        if view.clock_skew_s is not None:
            skew.add_metric(node, view.clock_skew_s)
        missing.add_metric(node, view.missing_samples)
        dropped.add_metric(node, view.dropped_samples)
        memory_total.add_metric(node, facts.memory_total_bytes)
        if facts.cpu_count_logical is not None:
            cpus.add_metric(node, facts.cpu_count_logical)
        if facts.boot_time_at is not None:
            boot.add_metric(node, facts.boot_time_at)
        sample, details = view.sample, view.details
        if sample is not None:
            _add(gauges, SAMPLE_GAUGES, sample, node)
        if details is not None:
            _add(detail_gauges, DETAIL_GAUGES, details, node)
        for family, spec in zip(pairs, PAIR_FAMILIES, strict=True):
            source = details if spec.from_details else sample
            values = None if source is None else spec.read(source)
            for key, value in values or ():
                family.add_metric([view.node_id, key], float(value))
    yield from (state, info, connected, last_seen, skew, missing, dropped, memory_total, cpus, boot)
    yield from (*gauges, *detail_gauges, *pairs)


def _add(
    families: list[GaugeMetricFamily], table: tuple[tuple[str, str, Reader], ...], hb: Heartbeat, node: list[str]
) -> None:
    for family, (_, _, read) in zip(families, table, strict=True):
        value = read(hb)
        if value is not None:
            family.add_metric(node, float(value))
