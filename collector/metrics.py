"""The collector's own counters, and the Prometheus exposition of them and of every node.

One ``CollectorStats`` per app holds plain integers bumped by the handlers. A
scrape is two steps. ``take_snapshot`` copies what it needs from the
``NodeCache`` and the stats into plain rows: it runs on the event loop, where
the cache lives, and is cheap. ``render_metrics`` builds the metric families
from that snapshot (a prometheus-client custom collector, so there is no Gauge
object per node to create, update or leak) and the text exposition: it touches
nothing shared, so the handler runs it in a thread. Done on the loop, both
together stalled ingest and every viewer for about a second at 10,000 nodes.

Not here: the HTTP handler (``collector.app``) and no global registry.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.cache import STATES, NodeCache, stored_sample
from shared.messages import Heartbeat

ENDPOINTS = ("ingest", "subscribe", "http")


@dataclass(slots=True)
class CollectorStats:
    """Counters the handlers bump; read by /metrics and /api/v1/health."""

    heartbeats_received: int = 0
    heartbeats_duplicate: int = 0
    updates_sent: int = 0
    updates_coalesced: int = 0
    updates_dropped: int = 0
    # (endpoint, reason) -> count
    protocol_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    # endpoint -> count
    connections_total: Counter[str] = field(default_factory=Counter)
    connections_active: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)


Reader = Callable[[Heartbeat], float | None]


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


# (metric suffix, help, how to read it from a node's last sample); ratios not percents, per Prometheus naming.
_SAMPLE_GAUGES: tuple[tuple[str, str, Reader], ...] = (
    ("cpu_usage_ratio", "CPU busy share, 0-1", lambda hb: _ratio(hb.cpu_percent)),
    ("memory_usage_ratio", "Memory used share, 0-1", lambda hb: _ratio(hb.mem_percent)),
    ("memory_used_bytes", "Memory in use", lambda hb: hb.mem_used_bytes),
    ("memory_available_bytes", "Memory available", lambda hb: hb.mem_available_bytes),
    ("swap_used_bytes", "Swap in use", lambda hb: hb.swap_used_bytes),
    ("load1", "1-minute load average", lambda hb: None if hb.load_avg is None else hb.load_avg[0]),
    ("load5", "5-minute load average", lambda hb: None if hb.load_avg is None else hb.load_avg[1]),
    ("load15", "15-minute load average", lambda hb: None if hb.load_avg is None else hb.load_avg[2]),
    ("network_receive_bytes_per_second", "Bytes received per second", lambda hb: hb.net_rx_bytes_per_s),
    ("network_transmit_bytes_per_second", "Bytes sent per second", lambda hb: hb.net_tx_bytes_per_s),
    ("disk_read_bytes_per_second", "Disk bytes read per second", lambda hb: hb.disk_read_bytes_per_s),
    ("disk_written_bytes_per_second", "Disk bytes written per second", lambda hb: hb.disk_write_bytes_per_s),
    ("processes", "Number of processes", lambda hb: hb.process_count),
    ("uptime_seconds", "Seconds since boot", lambda hb: hb.uptime_s),
)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """What /metrics shows of one node, copied from its record at scrape time."""

    node_id: str
    state: str
    connected: bool
    last_seen_at: float | None
    clock_skew_s: float | None
    missing_samples: int
    dropped_samples: int
    sample_frame: bytes | None  # decoded off the loop (collector.cache.stored_sample)
    sample_model: Heartbeat | None


@dataclass(frozen=True, slots=True)
class ScrapeSnapshot:
    """Everything one scrape renders, detached from the live cache and stats."""

    nodes: list[NodeRow]
    counts: dict[str, int]
    stats: CollectorStats


def take_snapshot(cache: NodeCache, stats: CollectorStats) -> ScrapeSnapshot:
    """Copy the scrape's inputs; call it where the cache is mutated (the event loop)."""
    rows = [
        NodeRow(
            node_id=node.node_id,
            state=node.state,
            connected=node.conn is not None,
            last_seen_at=node.last_seen_at,
            clock_skew_s=node.clock_skew_s,
            missing_samples=node.missing_samples,
            dropped_samples=node.dropped_samples,
            sample_frame=node.last_sample_frame,
            sample_model=node.last_sample_model,
        )
        for node in cache.nodes()
    ]
    return ScrapeSnapshot(nodes=rows, counts=cache.counts(), stats=copy.deepcopy(stats))


def render_metrics(snapshot: ScrapeSnapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot``; touches nothing shared, so it may run in a thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodewatchMetrics(snapshot))
    return generate_latest(registry)


class NodewatchMetrics(Collector):
    """Builds every metric family from one scrape's snapshot."""

    def __init__(self, snapshot: ScrapeSnapshot) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        """Nothing up front: families depend on the fleet, so registration must not call collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield node gauges labelled by node, then the collector's own counters."""
        yield from self._node_metrics()
        yield from self._own_metrics()

    def _node_metrics(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("nodewatch_node_state", "1 for the node's current state", labels=["node", "state"])
        connected = GaugeMetricFamily(
            "nodewatch_node_connected", "1 while the agent's websocket is open", labels=["node"]
        )
        last_seen = GaugeMetricFamily(
            "nodewatch_node_last_seen_timestamp_seconds", "When the collector last heard the node", labels=["node"]
        )
        skew = GaugeMetricFamily(
            "nodewatch_node_clock_skew_seconds", "Agent clock minus collector clock", labels=["node"]
        )
        missing = CounterMetricFamily(
            "nodewatch_node_missing_samples", "Samples never received (seq gaps)", labels=["node"]
        )
        dropped = CounterMetricFamily(
            "nodewatch_node_dropped_samples", "Samples the agent dropped from its backlog", labels=["node"]
        )
        gauges = [
            GaugeMetricFamily(f"nodewatch_node_{suffix}", text, labels=["node"]) for suffix, text, _ in _SAMPLE_GAUGES
        ]
        for node in self._snapshot.nodes:
            label = [node.node_id]
            for name in STATES:
                state.add_metric([node.node_id, name], 1.0 if node.state == name else 0.0)
            connected.add_metric(label, 1.0 if node.connected else 0.0)
            if node.last_seen_at is not None:
                last_seen.add_metric(label, node.last_seen_at)
            if node.clock_skew_s is not None:
                skew.add_metric(label, node.clock_skew_s)
            missing.add_metric(label, node.missing_samples)
            dropped.add_metric(label, node.dropped_samples)
            sample = stored_sample(node.sample_frame, node.sample_model)
            if sample is None:
                continue
            for family, (_, _, read) in zip(gauges, _SAMPLE_GAUGES, strict=True):
                value = read(sample)
                if value is not None:
                    family.add_metric(label, float(value))
        yield from (state, connected, last_seen, skew, missing, dropped, *gauges)
        counts = GaugeMetricFamily("nodewatch_nodes", "Nodes per liveness state", labels=["state"])
        for state_name, count in self._snapshot.counts.items():
            counts.add_metric([state_name], count)
        yield counts

    def _own_metrics(self) -> Iterator[Metric]:
        s = self._snapshot.stats
        p = "nodewatch_collector_"
        yield CounterMetricFamily(p + "heartbeats_received", "Heartbeats received", value=s.heartbeats_received)
        yield CounterMetricFamily(
            p + "heartbeats_duplicate",
            "Heartbeats ignored as duplicates (seq already held)",
            value=s.heartbeats_duplicate,
        )
        yield CounterMetricFamily(p + "updates_sent", "Update messages sent to subscribers", value=s.updates_sent)
        yield CounterMetricFamily(
            p + "updates_coalesced", "Node changes merged into one already pending", value=s.updates_coalesced
        )
        yield CounterMetricFamily(
            p + "updates_dropped", "Pending node changes discarded with a closed subscriber", value=s.updates_dropped
        )
        errors = CounterMetricFamily(
            p + "protocol_errors", "Connections closed for bad peer input, by reason", labels=["endpoint", "reason"]
        )
        for (endpoint, reason), count in sorted(s.protocol_errors.items()):
            errors.add_metric([endpoint, reason], count)
        yield errors
        total = CounterMetricFamily(p + "connections", "Connections accepted, by endpoint", labels=["endpoint"])
        active = GaugeMetricFamily(p + "connections_active", "Open websocket connections", labels=["endpoint"])
        auth = CounterMetricFamily(p + "auth_failures", "Requests refused with 401, by endpoint", labels=["endpoint"])
        for endpoint in ENDPOINTS:
            total.add_metric([endpoint], s.connections_total[endpoint])
            active.add_metric([endpoint], s.connections_active[endpoint])
            auth.add_metric([endpoint], s.auth_failures[endpoint])
        yield from (total, active, auth)
