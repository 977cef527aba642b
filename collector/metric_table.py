"""What each /metrics node family reads from a heartbeat: names, help texts and reader functions.

Four tables: ``SAMPLE_GAUGES`` (one series per node, from the last sample),
``DETAIL_GAUGES`` (one per node, from the last slow-tier details), ``PAIR_FAMILIES``
(one per node and per mount, device, core, mode, resource or sensor) and ``GPU_GAUGES``
(one per node and GPU, labelled ``gpu`` (the index) and ``name``, from the details). Names follow
``collector.node_metrics``'s rule: node_exporter's name with ``nodewatch_`` in front where
the meaning is the same, else a name with its unit. Shares are 0-1 (``_ratio``), not percent.

Pure functions of a ``Heartbeat``; not here: rendering (``collector.node_metrics``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.messages import GpuReading, Heartbeat

Pairs = Iterable[tuple[str, float]]
Reader = Callable[[Heartbeat], float | None]
PairReader = Callable[[Heartbeat], Pairs | None]
GpuValue = Callable[[GpuReading], float | None]


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


def _of(field: str) -> Reader:
    """The heartbeat's ``field`` as it is; a name Heartbeat lacks fails at import, not at the first scrape."""
    if field not in Heartbeat.model_fields:
        raise RuntimeError(f"expected a Heartbeat field, got {field!r}")
    return operator.attrgetter(field)


def _load(i: int) -> Reader:
    return lambda hb: None if hb.load_avg is None else hb.load_avg[i]


# (name, help, reader) of the last sample, one series per node.
SAMPLE_GAUGES: tuple[tuple[str, str, Reader], ...] = (
    ("nodewatch_node_cpu_usage_ratio", "CPU busy share, 0-1", lambda hb: _ratio(hb.cpu_percent)),
    ("nodewatch_node_memory_usage_ratio", "Memory used share, 0-1", lambda hb: _ratio(hb.mem_percent)),
    ("nodewatch_node_memory_used_bytes", "Memory in use (total - available, as free)", _of("mem_used_bytes")),
    ("nodewatch_node_memory_available_bytes", "Memory available", _of("mem_available_bytes")),
    ("nodewatch_node_memory_swap_total_bytes", "Swap size", _of("swap_total_bytes")),
    ("nodewatch_node_swap_used_bytes", "Swap in use", _of("swap_used_bytes")),
    ("nodewatch_node_load1", "1-minute load average", _load(0)),
    ("nodewatch_node_load5", "5-minute load average", _load(1)),
    ("nodewatch_node_load15", "15-minute load average", _load(2)),
    ("nodewatch_node_network_receive_bytes_per_second", "Bytes received per second", _of("net_rx_bytes_per_s")),
    ("nodewatch_node_network_transmit_bytes_per_second", "Bytes sent per second", _of("net_tx_bytes_per_s")),
    ("nodewatch_node_disk_read_bytes_per_second", "Disk bytes read per second", _of("disk_read_bytes_per_s")),
    ("nodewatch_node_disk_written_bytes_per_second", "Disk bytes written per second", _of("disk_write_bytes_per_s")),
    ("nodewatch_node_processes", "Number of processes", _of("process_count")),
    ("nodewatch_node_uptime_seconds", "Seconds since boot", _of("uptime_s")),
    ("nodewatch_node_cgroup_cpu_limit_cores", "CPU quota of the agent's cgroup", _of("cgroup_cpu_limit_cores")),
    (
        "nodewatch_node_cgroup_memory_limit_bytes",
        "Memory limit of the agent's cgroup",
        _of("cgroup_memory_limit_bytes"),
    ),
)

# Slow-tier values, one series per node, read from the last details.
DETAIL_GAUGES: tuple[tuple[str, str, Reader], ...] = (
    ("nodewatch_node_netstat_tcp_currestab", "TCP connections ESTABLISHED or CLOSE-WAIT", _of("tcp_established")),
    ("nodewatch_node_sockstat_tcp_tw", "TCP sockets in TIME-WAIT", _of("tcp_time_wait")),
    ("nodewatch_node_filefd_allocated", "File handles allocated", _of("fd_allocated")),
    ("nodewatch_node_filefd_maximum", "File handle limit", _of("fd_max")),
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


# Keyed series one node may add to one family per scrape (issue 13, finding 6: a maximal heartbeat's
# 1,024 cores and 64 mounts, interfaces and sensors with 256-character names were ~318 KiB of text per
# node, 3.7 s for 200 nodes). 32 mounts, interfaces or sensors cover a real server's (the agent already
# skips pseudo filesystems and loopback); the rest are counted in nodewatch_node_series_truncated.
MAX_KEYS_PER_NODE = 32
# Per-core series: 64 cores is a two-socket server's worth; a larger machine's aggregate cpu usage,
# load and mode ratios are still there, and the viewer shows every core.
MAX_CORES_PER_NODE = 64


@dataclass(frozen=True, slots=True)
class PairFamily:
    """A family with one series per node and per ``label`` value (mount, device, core, ...)."""

    name: str
    help: str
    label: str
    read: PairReader
    from_details: bool = False  # a slow-tier field: read from the node's last details
    counter: bool = False
    max_keys: int = MAX_KEYS_PER_NODE  # series per node past which the rest are counted, not written


PAIR_FAMILIES: tuple[PairFamily, ...] = (
    PairFamily(
        "nodewatch_node_cpu_core_usage_ratio",
        "Busy share of one logical CPU, 0-1 (the first 64 CPUs)",
        "cpu",
        _cores,
        max_keys=MAX_CORES_PER_NODE,
    ),
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

# (name, help, reader) of each GPU in the last details; dcgm-exporter's names are DCGM_FI_DEV_*, ours say the unit.
GPU_GAUGES: tuple[tuple[str, str, GpuValue], ...] = (
    (
        "nodewatch_gpu_utilization_ratio",
        "Share of the last sample period a kernel ran on the GPU, 0-1",
        lambda gpu: _ratio(gpu.utilization_percent),
    ),
    ("nodewatch_gpu_memory_used_bytes", "GPU memory in use", lambda gpu: gpu.memory_used_bytes),
    ("nodewatch_gpu_memory_total_bytes", "GPU memory size", lambda gpu: gpu.memory_total_bytes),
    ("nodewatch_gpu_temperature_celsius", "GPU die temperature", lambda gpu: gpu.temperature_celsius),
    ("nodewatch_gpu_power_watts", "Power the GPU board draws", lambda gpu: gpu.power_watts),
)
