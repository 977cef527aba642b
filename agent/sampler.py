"""The sampler: reads this machine through psutil and the kernel's files, into ``agent.readings`` records.

``PsutilReader`` is the only code that touches psutil, /proc and /sys.
- ``read_fast()`` reads counters (microseconds, safe on the event loop).
- ``read_slow()`` does what can take milliseconds or block (statvfs, swap,
  the process table, sensors, cgroup files) and runs in a worker thread
  every 5 s (``agent.heartbeat.SlowCache``), the last result repeated between.
- A call that raises drops its field and counts one sample error.

Network and disk counters, mounts and cgroups are read from the files under
an injected ``HostPaths`` (tests point it at a recorded tree), because the
totals need sysfs to tell physical devices from stacked ones (see
``agent.netdev``, ``agent.blockdev``). Where there is no procfs (macOS,
Windows) psutil reads them, and every interface and whole disk is counted.
CPU, load, memory, swap, processes and sensors come from psutil everywhere.

Not here: the tick loop or the network (``agent.runner``, ``agent.pusher``),
or the heartbeat map (``agent.heartbeat``, re-exported here for the runner).
Never ``psutil.cpu_percent(interval=...)``: it sleeps, and psutil 7 keeps its
``interval=None`` baseline per thread; the rates come from ``agent.rates``.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.blockdev import counted_disks, partition_names, read_diskstats
from agent.cgroup import DEFAULT_ROOT, detect_container, read_cgroup_limits
from agent.heartbeat import HeartbeatBuilder, SlowCache
from agent.kernelstats import read_file_handles, read_pressure, read_tcp
from agent.mounts import (
    DiskUsage,
    Partition,
    Statvfs,
    block_fstypes,
    partitions_from_mountinfo,
    select_mounts,
    usage_from_statvfs,
)
from agent.netdev import LOOPBACK, counted_interfaces, link_up, read_net_dev
from agent.procfs import HostPaths, read_mountinfo, read_text
from agent.rates import CounterPair, CpuTimes
from agent.readings import Attempts, FastReading, ProcessRow, SlowReading
from agent.wire import WireDict
from shared import __version__
from shared.limits import MAX_CORES, MAX_DISKS, MAX_SENSORS, MAX_SHORT_TEXT

__all__ = ["FastReading", "HeartbeatBuilder", "PsutilReader", "SlowCache", "SlowReading"]

TOP_N = 5
_MIN_CELSIUS, _MAX_CELSIUS = -273.15, 1000.0  # the wire's bounds; anything else is a broken sensor


def _per_core_times(ps: Any) -> list[CpuTimes]:
    return [dict(times._asdict()) for times in ps.cpu_times(percpu=True)]


def _sum_times(per_core: list[CpuTimes]) -> CpuTimes:
    return {name: sum(core.get(name, 0.0) for core in per_core) for name in per_core[0]}


class _Classified:
    """A classification of device names, worked out again only when the names change."""

    def __init__(self, classify: Callable[[frozenset[str]], frozenset[str]]) -> None:
        self._classify = classify
        self._names: frozenset[str] | None = None
        self._counted: frozenset[str] = frozenset()
        self._lock = threading.Lock()  # read_fast runs on the loop, read_slow in a worker thread

    def of(self, names: Iterable[str]) -> frozenset[str]:
        """The counted subset of ``names``."""
        key = frozenset(names)
        with self._lock:
            if key != self._names:
                self._names, self._counted = key, self._classify(key)
            return self._counted


class PsutilReader:
    """Reads counters through an injected psutil-like module, kernel files under ``host``, and ``statvfs``.

    ``cgroup_root`` None turns the cgroup reading off; otherwise it is where
    the cgroup hierarchies are assumed mounted if mountinfo cannot be read.
    """

    def __init__(
        self,
        ps: Any,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        host: HostPaths | None = None,
        cgroup_root: Path | None = DEFAULT_ROOT,
        statvfs: Callable[[str], Statvfs] = os.statvfs,
        top_processes: bool = False,
    ) -> None:
        self._ps = ps
        self._clock = clock
        self._wall_clock = wall_clock
        self._host = host if host is not None else HostPaths()
        self._cgroup_root = cgroup_root
        self._statvfs = statvfs
        self._top_processes = top_processes
        # Which devices the totals count, by the set of names it was worked out for: sysfs is asked
        # again only when a device comes or goes, not every tick (a stat per device per second).
        self._counted_disks = _Classified(lambda names: counted_disks(names, self._host.sys))
        self._counted_interfaces = _Classified(lambda names: counted_interfaces(names, self._host.sys))
        self._fast = Attempts()
        self._slow = Attempts()

    def read_fast(self) -> FastReading:
        """Read CPU, load, memory and I/O counters; cheap /proc reads, fine on the event loop."""
        ps, attempts = self._ps, self._fast
        before = attempts.errors
        monotonic_s, sampled_at = self._clock(), self._wall_clock()
        cpu_per_core = attempts.run("cpu_times", lambda: _per_core_times(ps))
        # The machine total is the field-wise sum of the cores: one /proc/stat read instead of two.
        cpu_total = _sum_times(cpu_per_core) if cpu_per_core else None
        load = attempts.run("getloadavg", lambda: tuple(float(x) for x in ps.getloadavg()))
        mem = attempts.run("virtual_memory", ps.virtual_memory)
        disk_io = attempts.run("disk_io_counters", self._disk_io)
        net = attempts.run("net_io_counters", self._net_io)
        return FastReading(
            monotonic_s=monotonic_s,
            sampled_at=sampled_at,
            cpu_total=cpu_total,
            cpu_per_core=cpu_per_core,
            load_avg=(load[0], load[1], load[2]) if load is not None and len(load) == 3 else None,
            # psutil's used is total - available on Linux (psutil/_pslinux.py virtual_memory), as free(1) shows it.
            mem_used_bytes=int(mem.used) if mem is not None else None,
            mem_available_bytes=int(mem.available) if mem is not None else None,
            mem_percent=float(mem.percent) if mem is not None else None,
            disk_io=disk_io,
            net_io=net[0] if net is not None else None,
            net_counted=net[1] if net is not None else None,
            errors=attempts.errors - before,
        )

    def _disk_io(self) -> dict[str, CounterPair] | None:
        stats = read_diskstats(self._host)
        if stats is not None:
            counted = self._counted_disks.of(stats)
            return {name: (s.read_bytes, s.write_bytes) for name, s in stats.items() if name in counted}
        # nowrap=False: agent.rates re-baselines on a decrease instead of psutil's global wrap cache.
        counters: Mapping[str, Any] | None = self._ps.disk_io_counters(perdisk=True, nowrap=False)
        if counters is None:  # psutil returns None when the machine has no disks
            return None
        skip = partition_names(counters)
        return {name: (int(c.read_bytes), int(c.write_bytes)) for name, c in counters.items() if name not in skip}

    def _net_io(self) -> tuple[dict[str, CounterPair], frozenset[str] | None] | None:
        devices = read_net_dev(self._host)
        if devices is not None:
            counters = {name: (c.rx_bytes, c.tx_bytes) for name, c in devices.items() if name != LOOPBACK}
            return counters, self._counted_interfaces.of(counters)
        nics: Mapping[str, Any] | None = self._ps.net_io_counters(pernic=True, nowrap=False)
        if nics is None:
            return None
        counters = {name: (int(c.bytes_recv), int(c.bytes_sent)) for name, c in nics.items() if name != LOOPBACK}
        return counters, None

    def read_slow(self) -> SlowReading:
        """Read disk usage, process table, sensors, cgroup limits and the details; run this in a worker thread."""
        attempts, host = self._slow, self._host
        before = attempts.errors
        disks = attempts.run("disk_usage", self._disks)
        swap = attempts.run("swap_memory", self._ps.swap_memory)  # parses all of /proc/vmstat: not every tick
        process_count = attempts.run("pids", lambda: len(self._ps.pids()))
        temperatures = attempts.run("sensors_temperatures", self._temperatures)
        cgroup = None
        if self._cgroup_root is not None:
            fallback = self._cgroup_root
            cgroup = attempts.run("cgroup", lambda: read_cgroup_limits(host, fallback))
        top_cpu = top_memory = None
        if self._top_processes:
            rows = attempts.run("process_iter", self._processes)
            if rows is not None:
                top_cpu = sorted(rows, key=lambda row: (-row.cpu_percent, row.pid))[:TOP_N]
                top_memory = sorted(rows, key=lambda row: (-row.rss_bytes, row.pid))[:TOP_N]
        stats_at = self._clock()  # the per-disk rates' instant: right at the read, after the slow calls
        stats = attempts.run("diskstats", lambda: read_diskstats(host))
        whole_disks = self._counted_disks.of(stats) if stats is not None else frozenset()
        net = attempts.run("net_dev", lambda: read_net_dev(host))
        return SlowReading(
            monotonic_s=stats_at,
            disks=disks,
            swap_total_bytes=int(swap.total) if swap is not None else None,
            swap_used_bytes=int(swap.used) if swap is not None else None,
            swap_percent=float(swap.percent) if swap is not None else None,
            process_count=process_count,
            temperatures=temperatures,
            cgroup=cgroup,
            top_cpu=top_cpu,
            top_memory=top_memory,
            disk_stats={name: s for name, s in stats.items() if name in whole_disks} if stats is not None else None,
            net_counters=net,
            links_down=frozenset(name for name in net if link_up(name, host.sys) is False) if net is not None else None,
            pressure=attempts.run("pressure", lambda: read_pressure(host)),
            tcp=attempts.run("tcp", lambda: read_tcp(host)),
            file_handles=attempts.run("file_handles", lambda: read_file_handles(host)),
            errors=attempts.errors - before,
        )

    def _disks(self) -> dict[str, DiskUsage]:
        mountinfo = read_mountinfo(self._host)
        usage: dict[str, DiskUsage] = {}
        if mountinfo is None:
            parts = [Partition(p.device, p.mountpoint, p.fstype) for p in self._ps.disk_partitions(all=False)]
            for mount in select_mounts(parts)[:MAX_DISKS]:
                value = self._slow.run(f"disk_usage({mount})", functools.partial(self._ps.disk_usage, mount))
                if value is not None:  # psutil's free is f_bavail, df's Avail
                    usage[mount[:MAX_SHORT_TEXT]] = DiskUsage(int(value.total), int(value.used), int(value.free))
            return usage
        read_only = {entry.mount_point: "ro" in entry.mount_options for entry in mountinfo}
        filesystems = read_text(self._host.proc / "filesystems")
        kinds = block_fstypes(filesystems) if filesystems is not None else None
        for mount in select_mounts(partitions_from_mountinfo(mountinfo, kinds))[:MAX_DISKS]:
            path = str(self._host.mounted(mount))
            result = self._slow.run(f"statvfs({mount})", functools.partial(self._statvfs, path))
            if result is not None and result.f_blocks > 0:  # a filesystem of no blocks is no disk
                usage[mount[:MAX_SHORT_TEXT]] = usage_from_statvfs(result, read_only=read_only[mount])
        return usage

    def _temperatures(self) -> dict[str, float] | None:
        read = getattr(self._ps, "sensors_temperatures", None)
        if read is None:  # macOS and Windows have no such call
            return None
        result: dict[str, float] = {}
        for chip, entries in read().items():
            for index, entry in enumerate(entries):
                current = float(entry.current)
                if not _MIN_CELSIUS <= current <= _MAX_CELSIUS:
                    continue
                label = f"{chip}/{entry.label or index}"[:MAX_SHORT_TEXT]
                result.setdefault(label, round(current, 1))
        if not result:
            return None
        return dict(list(result.items())[:MAX_SENSORS])

    def _processes(self) -> list[ProcessRow]:
        rows = []
        # process_iter keeps Process objects between calls, so cpu_percent has a baseline.
        for proc in self._ps.process_iter(["name", "cpu_percent", "memory_info"]):
            info = proc.info
            memory = info.get("memory_info")
            rows.append(
                ProcessRow(
                    pid=int(proc.pid),
                    name=str(info.get("name") or "?")[:MAX_SHORT_TEXT],
                    cpu_percent=max(0.0, float(info.get("cpu_percent") or 0.0)),
                    rss_bytes=int(memory.rss) if memory is not None else 0,
                )
            )
        return rows

    def read_facts(self) -> WireDict:
        """Collect what does not change while the agent runs, for the hello."""
        ps = self._ps
        boot_time = self._fast.run("boot_time", ps.boot_time)
        mem = self._fast.run("virtual_memory", ps.virtual_memory)
        logical = self._fast.run("cpu_count", lambda: ps.cpu_count(logical=True))
        physical = self._fast.run("cpu_count_physical", lambda: ps.cpu_count(logical=False))
        facts: WireDict = {
            "hostname": socket.gethostname()[:MAX_SHORT_TEXT],
            "os": platform.system()[:MAX_SHORT_TEXT],
            "os_release": platform.release()[:MAX_SHORT_TEXT],
            "platform": platform.platform()[:MAX_SHORT_TEXT],
            "arch": platform.machine()[:MAX_SHORT_TEXT],
            "cpu_count_logical": logical if isinstance(logical, int) and 1 <= logical <= MAX_CORES else None,
            "cpu_count_physical": physical if isinstance(physical, int) and 1 <= physical <= MAX_CORES else None,
            "memory_total_bytes": int(mem.total) if mem is not None else 0,
            "boot_time_at": float(boot_time) if boot_time is not None and boot_time > 0 else None,
            "agent_version": __version__,
            "python_version": platform.python_version(),
            "in_container": detect_container(self._host.rootfs) if sys.platform.startswith("linux") else False,
        }
        return {key: value for key, value in facts.items() if value is not None}
