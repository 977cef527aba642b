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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector.cache import STATES, NodeRecord
from shared.messages import Heartbeat, NodeFacts

# The agent reads the slow tier every 5 s, or every interval if longer (docs/protocol.md 5.2).
SLOW_PERIOD_S = 5.0
# A slow-tier value not renewed for this many periods is gone (docs/protocol.md 5.2).
SLOW_GONE_PERIODS = 3

Pairs = Iterable[tuple[str, float]]
Reader = Callable[[Heartbeat], float | None]
PairReader = Callable[[Heartbeat], Pairs | None]


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


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


def _load(i: int) -> Reader:
    return lambda hb: None if hb.load_avg is None else hb.load_avg[i]


# (name, help, reader) of the last sample, one series per node.
SAMPLE_GAUGES: tuple[tuple[str, str, Reader], ...] = (
    ("nodewatch_node_cpu_usage_ratio", "CPU busy share, 0-1", lambda hb: _ratio(hb.cpu_percent)),
    ("nodewatch_node_memory_usage_ratio", "Memory used share, 0-1", lambda hb: _ratio(hb.mem_percent)),
    ("nodewatch_node_memory_used_bytes", "Memory in use (total - available, as free)", lambda hb: hb.mem_used_bytes),
    ("nodewatch_node_memory_available_bytes", "Memory available", lambda hb: hb.mem_available_bytes),
    ("nodewatch_node_memory_swap_total_bytes", "Swap size", lambda hb: hb.swap_total_bytes),
    ("nodewatch_node_swap_used_bytes", "Swap in use", lambda hb: hb.swap_used_bytes),
    ("nodewatch_node_load1", "1-minute load average", _load(0)),
    ("nodewatch_node_load5", "5-minute load average", _load(1)),
    ("nodewatch_node_load15", "15-minute load average", _load(2)),
    ("nodewatch_node_network_receive_bytes_per_second", "Bytes received per second", lambda hb: hb.net_rx_bytes_per_s),
    ("nodewatch_node_network_transmit_bytes_per_second", "Bytes sent per second", lambda hb: hb.net_tx_bytes_per_s),
    ("nodewatch_node_disk_read_bytes_per_second", "Disk bytes read per second", lambda hb: hb.disk_read_bytes_per_s),
    (
        "nodewatch_node_disk_written_bytes_per_second",
        "Disk bytes written per second",
        lambda hb: hb.disk_write_bytes_per_s,
    ),
    ("nodewatch_node_processes", "Number of processes", lambda hb: hb.process_count),
    ("nodewatch_node_uptime_seconds", "Seconds since boot", lambda hb: hb.uptime_s),
    ("nodewatch_node_cgroup_cpu_limit_cores", "CPU quota of the agent's cgroup", lambda hb: hb.cgroup_cpu_limit_cores),
    (
        "nodewatch_node_cgroup_memory_limit_bytes",
        "Memory limit of the agent's cgroup",
        lambda hb: hb.cgroup_memory_limit_bytes,
    ),
)

# Slow-tier values, one series per node, read from the last details.
DETAIL_GAUGES: tuple[tuple[str, str, Reader], ...] = (
    (
        "nodewatch_node_netstat_tcp_currestab",
        "TCP connections ESTABLISHED or CLOSE-WAIT",
        lambda hb: hb.tcp_established,
    ),
    ("nodewatch_node_sockstat_tcp_tw", "TCP sockets in TIME-WAIT", lambda hb: hb.tcp_time_wait),
    ("nodewatch_node_filefd_allocated", "File handles allocated", lambda hb: hb.fd_allocated),
    ("nodewatch_node_filefd_maximum", "File handle limit", lambda hb: hb.fd_max),
)


def _cores(hb: Heartbeat) -> Pairs | None:
    cores = hb.cpu_per_core_percent
    return None if cores is None else ((str(i), p / 100) for i, p in enumerate(cores))


def _disk(index: int) -> PairReader:
    def read(hb: Heartbeat) -> Pairs | None:
        disks = hb.disks
        if disks is None:
            return None
        if index == 2:  # available: only agents of issue 14 on send it
            return ((m, v[2]) for m, v in disks.items() if len(v) > 2)
        if index == 3:  # free: total - used, what root may still write (f_bfree)
            return ((m, v[0] - v[1]) for m, v in disks.items())
        return ((m, v[index]) for m, v in disks.items())

    return read


def _fullness(hb: Heartbeat) -> Pairs | None:
    disks = hb.disks
    if disks is None:
        return None
    out = []
    for mount, v in disks.items():
        room = v[1] + v[2] if len(v) > 2 else v[0]  # df's Use%; [total, used] agents: used / total
        if room > 0:
            out.append((mount, v[1] / room))
    return out


def _indexed(attr: str, index: int, scale: float = 1.0) -> PairReader:
    def read(hb: Heartbeat) -> Pairs | None:
        values: dict[str, list[float]] | dict[str, list[int]] | None = getattr(hb, attr)
        if values is None:
            return None
        return ((k, v[index] * scale) for k, v in values.items() if len(v) > index)

    return read


def _mapped(attr: str, scale: float = 1.0) -> PairReader:
    def read(hb: Heartbeat) -> Pairs | None:
        values: dict[str, float] | None = getattr(hb, attr)
        return None if values is None else ((k, v * scale) for k, v in values.items())

    return read


def _read_only(hb: Heartbeat) -> Pairs | None:
    if hb.disks_read_only is None or hb.disks is None:
        return None
    read_only = set(hb.disks_read_only)
    return ((m, 1.0 if m in read_only else 0.0) for m in hb.disks)


def _link_up(hb: Heartbeat) -> Pairs | None:
    if hb.net_interfaces_down is None:
        return None
    down = set(hb.net_interfaces_down)
    names = set(hb.net_interfaces or ()) | set(hb.net_interface_errors or ()) | down
    return ((name, 0.0 if name in down else 1.0) for name in sorted(names))


def _interfaces(index: int) -> PairReader:
    return _indexed("net_interfaces", index)


@dataclass(frozen=True, slots=True)
class PairFamily:
    """A family with one series per node and per ``label`` value (mount, device, core, ...)."""

    name: str
    help: str
    label: str
    read: PairReader
    from_details: bool = False  # a slow-tier field: read from the node's last details
    counter: bool = False


PAIR_FAMILIES: tuple[PairFamily, ...] = (
    PairFamily("nodewatch_node_cpu_core_usage_ratio", "Busy share of one logical CPU, 0-1", "cpu", _cores),
    PairFamily(
        "nodewatch_node_cpu_mode_ratio",
        "Share of all CPU time per mode, 0-1",
        "mode",
        _mapped("cpu_mode_percent", 0.01),
        from_details=True,
    ),
    PairFamily("nodewatch_node_filesystem_size_bytes", "Filesystem size (f_blocks)", "mountpoint", _disk(0)),
    PairFamily("nodewatch_node_filesystem_used_bytes", "Filesystem bytes in use", "mountpoint", _disk(1)),
    PairFamily(
        "nodewatch_node_filesystem_avail_bytes", "Bytes a non-root user may still write", "mountpoint", _disk(2)
    ),
    PairFamily("nodewatch_node_filesystem_free_bytes", "Free bytes, root's reserve included", "mountpoint", _disk(3)),
    PairFamily(
        "nodewatch_node_filesystem_fullness_ratio", "used / (used + avail), df's Use%, 0-1", "mountpoint", _fullness
    ),
    PairFamily(
        "nodewatch_node_filesystem_files", "Inodes", "mountpoint", _indexed("disk_inodes", 0), from_details=True
    ),
    PairFamily(
        "nodewatch_node_filesystem_files_free",
        "Free inodes",
        "mountpoint",
        _indexed("disk_inodes", 1),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_filesystem_readonly",
        "1 for a mount mounted read-only",
        "mountpoint",
        _read_only,
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_network_interface_receive_bytes_per_second",
        "Bytes received per second",
        "device",
        _interfaces(0),
    ),
    PairFamily(
        "nodewatch_node_network_interface_transmit_bytes_per_second", "Bytes sent per second", "device", _interfaces(1)
    ),
    PairFamily(
        "nodewatch_node_network_receive_errs",
        "Receive errors",
        "device",
        _indexed("net_interface_errors", 0),
        from_details=True,
        counter=True,
    ),
    PairFamily(
        "nodewatch_node_network_receive_drop",
        "Received packets dropped",
        "device",
        _indexed("net_interface_errors", 1),
        from_details=True,
        counter=True,
    ),
    PairFamily(
        "nodewatch_node_network_transmit_errs",
        "Transmit errors",
        "device",
        _indexed("net_interface_errors", 2),
        from_details=True,
        counter=True,
    ),
    PairFamily(
        "nodewatch_node_network_transmit_drop",
        "Sent packets dropped",
        "device",
        _indexed("net_interface_errors", 3),
        from_details=True,
        counter=True,
    ),
    PairFamily(
        "nodewatch_node_network_up", "1 while the interface's link is up", "device", _link_up, from_details=True
    ),
    PairFamily(
        "nodewatch_node_disk_device_read_bytes_per_second",
        "Bytes read per second",
        "device",
        _indexed("disk_devices", 0),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_disk_device_written_bytes_per_second",
        "Bytes written per second",
        "device",
        _indexed("disk_devices", 1),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_disk_device_reads_per_second",
        "Reads completed per second",
        "device",
        _indexed("disk_devices", 2),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_disk_device_writes_per_second",
        "Writes completed per second",
        "device",
        _indexed("disk_devices", 3),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_disk_device_busy_ratio",
        "Share of time with I/O in flight (%util), 0-1",
        "device",
        _indexed("disk_devices", 4, 0.01),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_disk_device_await_seconds",
        "Mean time per completed I/O",
        "device",
        _indexed("disk_devices", 5, 0.001),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_pressure_some_ratio",
        "Share of the last 10 s some tasks stalled, 0-1",
        "resource",
        _indexed("pressure_avg10_percent", 0, 0.01),
        from_details=True,
    ),
    PairFamily(
        "nodewatch_node_pressure_full_ratio",
        "Share of the last 10 s all tasks stalled, 0-1",
        "resource",
        _indexed("pressure_avg10_percent", 1, 0.01),
        from_details=True,
    ),
    PairFamily("nodewatch_node_hwmon_temp_celsius", "Sensor temperature", "sensor", _mapped("temperatures")),
)

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
