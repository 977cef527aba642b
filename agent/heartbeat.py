"""Pure: readings in, the heartbeat map out, with the rate baselines kept between calls; and the slow-tier cache.

``HeartbeatBuilder`` builds the plain map that
``shared.codec.encode(Heartbeat(...))`` would pack (see ``agent.wire`` for
why not the pydantic model itself). ``SlowCache`` decides when the slow
reading is refreshed and repeats the last one in between. The GPUs come inside
the slow reading (``agent.gpu.with_gpus``, read in the slow-read worker thread),
so building a heartbeat reads nothing.
Not here: reading anything (``agent.sampler``, ``agent.gpu``), the tick loop (``agent.runner``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from agent.cgroup import CgroupLimits
from agent.extras import ExtrasBuilder
from agent.netdev import first_interfaces
from agent.rates import CounterRates, CounterRateTracker, CpuRateTracker
from agent.readings import FastReading, ProcessRow, SlowReading
from agent.wire import WireDict
from shared.limits import MAX_CORES, MAX_SHORT_TEXT


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
        """The last reading, its errors already counted and its details already sent; None if none is young enough."""
        if self._reading is None or now - self._read_at > self.max_age_s:
            return None
        return replace(self._reading, errors=0, fresh=False)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _percent(value: float | None) -> float | None:
    """Round to 0.1 and clamp into the wire's 0-100: psutil can report 100.1 on a busy, rounding kernel."""
    return None if value is None else min(100.0, max(0.0, round(value, 1)))


def _rounded_pair(pair: tuple[float, float]) -> list[float]:
    return [round(pair[0], 1), round(pair[1], 1)]


def _counted_total(rates: CounterRates, counted: Collection[str] | None) -> tuple[float, float] | None:
    """The sum over the counted devices that have rates; all of them when ``counted`` is None."""
    if counted is None:
        return rates.total
    pairs = [rate for name, rate in rates.per_device.items() if name in counted]
    if not pairs:
        return None
    return (sum(rate[0] for rate in pairs), sum(rate[1] for rate in pairs))


def _usage(rows: list[ProcessRow] | None) -> list[WireDict] | None:
    if rows is None:
        return None
    return [
        {"pid": row.pid, "name": row.name, "cpu_percent": round(row.cpu_percent, 1), "rss_bytes": row.rss_bytes}
        for row in rows
    ]


class HeartbeatBuilder:
    """Turns readings into a wire ``Heartbeat``, keeping the rate baselines between calls; pure."""

    def __init__(self, boot_time_at: float | None = None) -> None:
        self._boot_time_at = boot_time_at
        self._cpu = CpuRateTracker()
        self._disk = CounterRateTracker()
        self._net = CounterRateTracker()
        self._extras = ExtrasBuilder()
        self.sample_errors = 0

    def prime(self, fast: FastReading) -> None:
        """Record a baseline so the first heartbeat already carries rates."""
        self._cpu.update(fast.cpu_total, fast.cpu_per_core)
        self._disk.update(fast.monotonic_s, fast.disk_io)
        self._net.update(fast.monotonic_s, fast.net_io)
        self._extras.prime(fast)

    def build(self, seq: int, fast: FastReading, slow: SlowReading | None, late_ticks: int = 0) -> WireDict:
        """Return the heartbeat for ``seq``; ``slow`` is None when the slow reading did not finish in time."""
        self.sample_errors += fast.errors + (slow.errors if slow is not None else 1)
        cpu = self._cpu.update(fast.cpu_total, fast.cpu_per_core)
        disk = self._disk.update(fast.monotonic_s, fast.disk_io)
        net = self._net.update(fast.monotonic_s, fast.net_io)
        net_total = _counted_total(net, fast.net_counted)
        extras = self._extras.build(fast, slow) if slow is not None else {}
        slow = slow if slow is not None else SlowReading()
        cgroup = slow.cgroup if slow.cgroup is not None else CgroupLimits()
        interfaces = {name: net.per_device[name] for name in first_interfaces(net.per_device, fast.net_counted)}
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
            "disks": {mount: [u.total_bytes, u.used_bytes, u.available_bytes] for mount, u in slow.disks.items()}
            if slow.disks
            else None,
            **extras,  # in the model's field order, right after disks
            "disk_read_bytes_per_s": round(disk.total[0], 1) if disk.total is not None else None,
            "disk_write_bytes_per_s": round(disk.total[1], 1) if disk.total is not None else None,
            "net_rx_bytes_per_s": round(net_total[0], 1) if net_total is not None else None,
            "net_tx_bytes_per_s": round(net_total[1], 1) if net_total is not None else None,
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
