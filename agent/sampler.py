"""The sampler: reads this machine through psutil and builds heartbeat maps (``shared.messages.Heartbeat``).

Two halves:
- ``PsutilReader`` is the only code that touches psutil and the cgroup files.
  Its ``read_fast()`` reads /proc counters (microseconds, safe on the event
  loop); its ``read_slow()`` does what can take milliseconds or block
  (disk_usage, swap, process table, sensors, cgroup files) and runs in a
  worker thread, every 5 s (``SlowCache``), the last result repeated between.
  A call that raises drops its field and counts one sample error.
- ``HeartbeatBuilder`` is pure: recorded readings in, exact numbers out. It
  builds the plain map that ``shared.codec.encode(Heartbeat(...))`` would
  pack (see ``agent.wire`` for why not the pydantic model itself).

Not here: the tick loop or the network (``agent.runner``, ``agent.pusher``).
Never ``psutil.cpu_percent(interval=...)``: it sleeps, and psutil 7 keeps its
``interval=None`` baseline per thread; the rates come from ``agent.rates``.
"""

from __future__ import annotations

import functools
import logging
import platform
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from agent.cgroup import DEFAULT_ROOT, CgroupLimits, detect_container, read_cgroup_limits
from agent.mounts import Partition, select_mounts
from agent.rates import CounterPair, CounterRateTracker, CpuRateTracker, CpuTimes
from agent.wire import WireDict
from shared import __version__
from shared.limits import MAX_CORES, MAX_DISKS, MAX_INTERFACES, MAX_SENSORS, MAX_SHORT_TEXT

log = logging.getLogger(__name__)

T = TypeVar("T")
TOP_N = 5
_MIN_CELSIUS, _MAX_CELSIUS = -273.15, 1000.0  # the wire's bounds; anything else is a broken sensor


@dataclass(frozen=True, slots=True)
class FastReading:
    """Counters read on the event loop, with the clocks they were read at."""

    monotonic_s: float
    sampled_at: float
    cpu_total: CpuTimes | None = None
    cpu_per_core: list[CpuTimes] | None = None
    load_avg: tuple[float, float, float] | None = None
    mem_used_bytes: int | None = None
    mem_available_bytes: int | None = None
    mem_percent: float | None = None
    disk_io: dict[str, CounterPair] | None = None
    net_io: dict[str, CounterPair] | None = None
    errors: int = 0


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One process of the top lists, before it becomes a wire ``ProcessUsage``."""

    pid: int
    name: str
    cpu_percent: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class SlowReading:
    """What ``read_slow()`` found; None fields were not measured (or failed)."""

    disks: dict[str, tuple[int, int]] | None = None
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    swap_percent: float | None = None
    process_count: int | None = None
    temperatures: dict[str, float] | None = None
    cgroup: CgroupLimits | None = None
    top_cpu: list[ProcessRow] | None = None
    top_memory: list[ProcessRow] | None = None
    errors: int = 0


@dataclass(slots=True)
class _Attempts:
    """Runs psutil calls, counting and logging (once per field) the ones that raise."""

    errors: int = 0
    logged: set[str] = field(default_factory=set)

    def run(self, name: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - psutil and the /proc files it parses fail many ways; a field must never kill the agent
            self.errors += 1
            if name not in self.logged:
                self.logged.add(name)
                log.warning("sampling %s failed, leaving it out: %r", name, exc)
            return None


def _per_core_times(ps: Any) -> list[CpuTimes]:
    return [dict(times._asdict()) for times in ps.cpu_times(percpu=True)]


def _sum_times(per_core: list[CpuTimes]) -> CpuTimes:
    return {name: sum(core.get(name, 0.0) for core in per_core) for name in per_core[0]}


def partition_names(names: list[str]) -> set[str]:
    """Return the names that are partitions of another listed disk (sda1 of sda, nvme0n1p2 of nvme0n1).

    psutil's per-disk counters list both; summing them would count bytes twice.
    """
    listed = set(names)
    partitions = set()
    for name in names:
        stem = name.rstrip("0123456789")
        if stem == name:
            continue
        parent = stem[:-1] if stem.endswith("p") and stem[:-1] in listed else stem
        if parent in listed and parent != name:
            partitions.add(name)
    return partitions


class PsutilReader:
    """Reads counters through an injected psutil-like module and a cgroup root path."""

    def __init__(
        self,
        ps: Any,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        cgroup_root: Path | None = DEFAULT_ROOT,
        top_processes: bool = False,
    ) -> None:
        self._ps = ps
        self._clock = clock
        self._wall_clock = wall_clock
        self._cgroup_root = cgroup_root
        self._top_processes = top_processes
        self._fast = _Attempts()
        self._slow = _Attempts()

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
        net_io = attempts.run("net_io_counters", self._net_io)
        return FastReading(
            monotonic_s=monotonic_s,
            sampled_at=sampled_at,
            cpu_total=cpu_total,
            cpu_per_core=cpu_per_core,
            load_avg=(load[0], load[1], load[2]) if load is not None and len(load) == 3 else None,
            mem_used_bytes=int(mem.used) if mem is not None else None,
            mem_available_bytes=int(mem.available) if mem is not None else None,
            mem_percent=float(mem.percent) if mem is not None else None,
            disk_io=disk_io,
            net_io=net_io,
            errors=attempts.errors - before,
        )

    def _disk_io(self) -> dict[str, CounterPair] | None:
        # nowrap=False: agent.rates re-baselines on a decrease instead of psutil's global wrap cache.
        counters: Mapping[str, Any] | None = self._ps.disk_io_counters(perdisk=True, nowrap=False)
        if counters is None:  # psutil returns None when the machine has no disks
            return None
        skip = partition_names(list(counters))
        return {name: (int(c.read_bytes), int(c.write_bytes)) for name, c in counters.items() if name not in skip}

    def _net_io(self) -> dict[str, CounterPair] | None:
        counters: Mapping[str, Any] | None = self._ps.net_io_counters(pernic=True, nowrap=False)
        if counters is None:
            return None
        return {name: (int(c.bytes_recv), int(c.bytes_sent)) for name, c in counters.items() if name != "lo"}

    def read_slow(self) -> SlowReading:
        """Read disk usage, process table, sensors and cgroup limits; run this in a worker thread."""
        attempts = self._slow
        before = attempts.errors
        disks = attempts.run("disk_usage", self._disks)
        swap = attempts.run("swap_memory", self._ps.swap_memory)  # parses all of /proc/vmstat: not every tick
        process_count = attempts.run("pids", lambda: len(self._ps.pids()))
        temperatures = attempts.run("sensors_temperatures", self._temperatures)
        cgroup = None
        if self._cgroup_root is not None:
            root = self._cgroup_root
            cgroup = attempts.run("cgroup", lambda: read_cgroup_limits(root))
        top_cpu = top_memory = None
        if self._top_processes:
            rows = attempts.run("process_iter", self._processes)
            if rows is not None:
                top_cpu = sorted(rows, key=lambda row: (-row.cpu_percent, row.pid))[:TOP_N]
                top_memory = sorted(rows, key=lambda row: (-row.rss_bytes, row.pid))[:TOP_N]
        return SlowReading(
            disks=disks,
            swap_total_bytes=int(swap.total) if swap is not None else None,
            swap_used_bytes=int(swap.used) if swap is not None else None,
            swap_percent=float(swap.percent) if swap is not None else None,
            process_count=process_count,
            temperatures=temperatures,
            cgroup=cgroup,
            top_cpu=top_cpu,
            top_memory=top_memory,
            errors=attempts.errors - before,
        )

    def _disks(self) -> dict[str, tuple[int, int]]:
        parts = [Partition(p.device, p.mountpoint, p.fstype) for p in self._ps.disk_partitions(all=False)]
        usage: dict[str, tuple[int, int]] = {}
        for mount in select_mounts(parts)[:MAX_DISKS]:
            value = self._slow.run(f"disk_usage({mount})", functools.partial(self._ps.disk_usage, mount))
            if value is not None:
                usage[mount[:MAX_SHORT_TEXT]] = (int(value.total), int(value.used))
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
            "in_container": detect_container() if sys.platform.startswith("linux") else False,
        }
        return {key: value for key, value in facts.items() if value is not None}


class SlowCache:
    """When to refresh the slow reading, and the last one to reuse in between.

    Disk usage, swap, the process count, sensors and cgroup limits change
    slowly, and reading them costs more than everything else in a tick
    (bench/agent_overhead.py). So they are read every ``refresh_s`` and the
    last reading is repeated in the heartbeats between, for at most
    ``max_age_s``; an older one is dropped rather than shown as current.
    Pure: the caller passes the monotonic ``now``.
    """

    def __init__(self, refresh_s: float, max_age_s: float) -> None:
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self._started_at: float | None = None
        self._reading: SlowReading | None = None
        self._read_at = 0.0

    def due(self, now: float) -> bool:
        """True if a new slow reading should start at ``now``."""
        return self._started_at is None or now - self._started_at >= self.refresh_s

    def started(self, now: float) -> None:
        """Note that a slow reading started at ``now``."""
        self._started_at = now

    def store(self, reading: SlowReading, now: float) -> SlowReading:
        """Keep a fresh reading (finished at ``now``) and return it; its errors count once."""
        self._reading, self._read_at = reading, now
        return reading

    def reuse(self, now: float) -> SlowReading | None:
        """The last reading with its errors already counted, or None if there is none young enough."""
        if self._reading is None or now - self._read_at > self.max_age_s:
            return None
        return replace(self._reading, errors=0)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _percent(value: float | None) -> float | None:
    """Round to 0.1 and clamp into the wire's 0-100: psutil can report 100.1 on a busy, rounding kernel."""
    return None if value is None else min(100.0, max(0.0, round(value, 1)))


def _rounded_pair(pair: tuple[float, float]) -> list[float]:
    return [round(pair[0], 1), round(pair[1], 1)]


class HeartbeatBuilder:
    """Pure: turns readings into a wire ``Heartbeat``, keeping the rate baselines between calls."""

    def __init__(self, boot_time_at: float | None = None) -> None:
        self._boot_time_at = boot_time_at
        self._cpu = CpuRateTracker()
        self._disk = CounterRateTracker()
        self._net = CounterRateTracker()
        self.sample_errors = 0

    def prime(self, fast: FastReading) -> None:
        """Record a baseline so the first heartbeat already carries rates."""
        self._cpu.update(fast.cpu_total, fast.cpu_per_core)
        self._disk.update(fast.monotonic_s, fast.disk_io)
        self._net.update(fast.monotonic_s, fast.net_io)

    def build(self, seq: int, fast: FastReading, slow: SlowReading | None, late_ticks: int = 0) -> WireDict:
        """Return the heartbeat for ``seq``; ``slow`` is None when the slow reading did not finish in time."""
        self.sample_errors += fast.errors + (slow.errors if slow is not None else 1)
        cpu = self._cpu.update(fast.cpu_total, fast.cpu_per_core)
        disk = self._disk.update(fast.monotonic_s, fast.disk_io)
        net = self._net.update(fast.monotonic_s, fast.net_io)
        slow = slow if slow is not None else SlowReading()
        cgroup = slow.cgroup if slow.cgroup is not None else CgroupLimits()
        interfaces = dict(sorted(net.per_device.items())[:MAX_INTERFACES])
        uptime_s = None
        if self._boot_time_at is not None:
            uptime_s = round(max(0.0, fast.sampled_at - self._boot_time_at), 1)
        fields: WireDict = {
            "type": "heartbeat",
            "seq": seq,
            "sampled_at": round(fast.sampled_at, 3),
            "cpu_percent": _percent(cpu.total_percent),
            "cpu_per_core_percent": [round(v, 1) for v in cpu.per_core_percent[:MAX_CORES]]
            if cpu.per_core_percent is not None
            else None,
            "load_avg": [max(0.0, round(v, 2)) for v in fast.load_avg] if fast.load_avg is not None else None,
            "mem_used_bytes": fast.mem_used_bytes,
            "mem_available_bytes": fast.mem_available_bytes,
            "mem_percent": _percent(fast.mem_percent),
            "swap_total_bytes": slow.swap_total_bytes,
            "swap_used_bytes": slow.swap_used_bytes,
            "swap_percent": _percent(slow.swap_percent),
            "disks": {mount: [total, used] for mount, (total, used) in slow.disks.items()} if slow.disks else None,
            "disk_read_bytes_per_s": round(disk.total[0], 1) if disk.total is not None else None,
            "disk_write_bytes_per_s": round(disk.total[1], 1) if disk.total is not None else None,
            "net_rx_bytes_per_s": round(net.total[0], 1) if net.total is not None else None,
            "net_tx_bytes_per_s": round(net.total[1], 1) if net.total is not None else None,
            "net_interfaces": {name[:MAX_SHORT_TEXT]: _rounded_pair(rates) for name, rates in interfaces.items()}
            or None,
            "process_count": slow.process_count,
            "uptime_s": uptime_s,
            "temperatures": slow.temperatures,
            "cgroup_cpu_limit_cores": _round(cgroup.cpu_limit_cores, 3),
            "cgroup_memory_limit_bytes": cgroup.memory_limit_bytes,
            "top_cpu": _usage(slow.top_cpu),
            "top_memory": _usage(slow.top_memory),
            "sample_errors": self.sample_errors or None,
            "late_ticks": late_ticks or None,
        }
        return {key: value for key, value in fields.items() if value is not None}


def _usage(rows: list[ProcessRow] | None) -> list[WireDict] | None:
    if rows is None:
        return None
    return [
        {"pid": row.pid, "name": row.name, "cpu_percent": round(row.cpu_percent, 1), "rss_bytes": row.rss_bytes}
        for row in rows
    ]
