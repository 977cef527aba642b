"""Pure: the node_exporter-style details of a heartbeat, built once per fresh slow reading (every 5 s).

Inodes, read-only mounts, CPU time by mode, pressure stall information,
per-disk I/O, per-interface errors and drops, down links, TCP counts and
file handles, and the GPUs' figures (read by ``agent.gpu`` into the slow reading). They change
slowly and would push the 1 Hz heartbeat past its 600-byte budget if every
heartbeat repeated them, so only the heartbeat that
carries a fresh slow reading has them; in between they are absent
(docs/protocol.md, "slow-tier fields"). Rates here (CPU modes, disk I/O) are
over the time since the previous fresh slow reading.

Not here: reading anything (``agent.sampler``), the 1 Hz fields (``agent.heartbeat``).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.blockdev import DiskStats
from agent.netdev import LOOPBACK, first_interfaces
from agent.rates import CpuTimes
from agent.readings import FastReading, SlowReading
from agent.wire import WireDict
from shared.limits import MAX_SHORT_TEXT

# The modes node_exporter's node_cpu_seconds_total has besides idle; guest time is inside user already.
CPU_MODES = ("user", "nice", "system", "iowait", "irq", "softirq", "steal")
_NOT_IN_TOTAL = ("guest", "guest_nice")


def cpu_mode_percent(before: CpuTimes, after: CpuTimes) -> dict[str, float] | None:
    """Each mode's share of all CPU time between two readings, percent; None if no time passed."""
    deltas = {name: max(0.0, float(after[name]) - float(before[name])) for name in after if name in before}
    total = sum(value for name, value in deltas.items() if name not in _NOT_IN_TOTAL)
    if total <= 0.0:
        return None
    return {mode: min(100.0, round(deltas[mode] / total * 100.0, 1)) for mode in CPU_MODES if mode in deltas}


def disk_device_rates(before: DiskStats, after: DiskStats, elapsed_s: float) -> list[float] | None:
    """[read_bytes_per_s, write_bytes_per_s, reads_per_s, writes_per_s, busy_percent, await_ms], as iostat -x.

    None when a counter went down (the device was re-created) or no time passed.
    """
    deltas = [new - old for new, old in zip(after, before, strict=True)]
    if elapsed_s <= 0.0 or any(delta < 0 for delta in deltas):
        return None
    reads, read_bytes, read_ms, writes, write_bytes, write_ms, busy_ms = deltas
    ios = reads + writes
    return [
        round(read_bytes / elapsed_s, 1),
        round(write_bytes / elapsed_s, 1),
        round(reads / elapsed_s, 2),
        round(writes / elapsed_s, 2),
        min(100.0, round(busy_ms / (elapsed_s * 1000.0) * 100.0, 1)),
        round((read_ms + write_ms) / ios, 2) if ios else 0.0,  # iostat's r_await/w_await, both kinds together
    ]


def _inodes(slow: SlowReading) -> dict[str, list[int]] | None:
    if not slow.disks:
        return None
    found = {
        mount: [usage.inodes_total, usage.inodes_free]
        for mount, usage in slow.disks.items()
        if usage.inodes_total is not None and usage.inodes_free is not None
    }
    return found or None


def _read_only(slow: SlowReading) -> list[str] | None:
    if not slow.disks or all(usage.read_only is None for usage in slow.disks.values()):
        return None
    return sorted(mount for mount, usage in slow.disks.items() if usage.read_only)


class ExtrasBuilder:
    """Keeps the baselines of the slow-tier rates: CPU times and disk counters at the last fresh reading."""

    def __init__(self) -> None:
        self._cpu: CpuTimes | None = None
        self._disks: Mapping[str, DiskStats] | None = None
        self._disks_at: float | None = None

    def prime(self, fast: FastReading) -> None:
        """Take the CPU baseline, so the first fresh reading already has CPU modes."""
        self._cpu = fast.cpu_total

    def build(self, fast: FastReading, slow: SlowReading) -> WireDict:
        """The detail fields in wire order, or nothing for a repeated slow reading."""
        if not slow.fresh:
            return {}
        modes = None
        if fast.cpu_total is not None:
            if self._cpu is not None:
                modes = cpu_mode_percent(self._cpu, fast.cpu_total)
            self._cpu = fast.cpu_total
        counters = slow.net_counters or {}
        # The interfaces net_interfaces would list: loopback never, physical ones first.
        interfaces = first_interfaces([name for name in counters if name != LOOPBACK], fast.net_counted)
        tcp, handles = slow.tcp, slow.file_handles
        return {
            "disk_inodes": _inodes(slow),
            "disks_read_only": _read_only(slow),
            "cpu_mode_percent": modes,
            "pressure_avg10_percent": {
                resource: [p.some_avg10] if p.full_avg10 is None else [p.some_avg10, p.full_avg10]
                for resource, p in slow.pressure.items()
            }
            if slow.pressure
            else None,
            "disk_devices": self._disk_devices(slow),
            "net_interface_errors": {
                name[:MAX_SHORT_TEXT]: [c.rx_errors, c.rx_dropped, c.tx_errors, c.tx_dropped]
                for name in interfaces
                if (c := counters.get(name)) is not None
            }
            or None,
            "net_interfaces_down": sorted(name[:MAX_SHORT_TEXT] for name in interfaces if name in slow.links_down)
            if slow.links_down is not None
            else None,
            "tcp_established": tcp.established if tcp is not None else None,
            "tcp_time_wait": tcp.time_wait if tcp is not None else None,
            "fd_allocated": handles.allocated if handles is not None else None,
            "fd_max": handles.maximum if handles is not None else None,
            "gpus": slow.gpus,
        }

    def _disk_devices(self, slow: SlowReading) -> dict[str, list[float]] | None:
        before, before_at = self._disks, self._disks_at
        self._disks, self._disks_at = slow.disk_stats, slow.monotonic_s
        if slow.disk_stats is None or before is None or before_at is None or slow.monotonic_s is None:
            return None
        found = {}
        for name, stats in slow.disk_stats.items():
            old = before.get(name)
            rates = disk_device_rates(old, stats, slow.monotonic_s - before_at) if old is not None else None
            if rates is not None:
                found[name[:MAX_SHORT_TEXT]] = rates
        return found or None
