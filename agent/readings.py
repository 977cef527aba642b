"""What one sampling pass read, as plain frozen records, and the error counting every reader shares.

Not here: reading (``agent.sampler``) or turning readings into wire fields
(``agent.heartbeat``). None in a reading means "not measured, or failed".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from agent.blockdev import DiskStats
from agent.cgroup import CgroupLimits
from agent.kernelstats import FileHandles, Pressure, TcpCounts
from agent.mounts import DiskUsage
from agent.netdev import NetCounters
from agent.rates import CounterPair, CpuTimes
from agent.wire import WireDict

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    # (read, write) bytes of the whole physical disks only: what the totals sum (agent.blockdev).
    disk_io: dict[str, CounterPair] | None = None
    # (rx, tx) bytes of every interface but loopback, and the ones the totals sum (agent.netdev);
    # net_counted None means all of them (no sysfs to tell).
    net_io: dict[str, CounterPair] | None = None
    net_counted: frozenset[str] | None = None
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
    """What ``read_slow()`` found; None fields were not measured (or failed).

    ``fresh`` is False when ``SlowCache`` repeats a reading: the node_exporter
    style details (``agent.extras``) are sent once per reading, not repeated.
    """

    monotonic_s: float | None = None  # when disk_stats were read: the per-disk rates' clock
    fresh: bool = True
    disks: dict[str, DiskUsage] | None = None
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    swap_percent: float | None = None
    process_count: int | None = None
    temperatures: dict[str, float] | None = None
    cgroup: CgroupLimits | None = None
    top_cpu: list[ProcessRow] | None = None
    top_memory: list[ProcessRow] | None = None
    # Whole physical disks' cumulative I/O, every interface's counters (loopback too) and the down ones.
    disk_stats: dict[str, DiskStats] | None = None
    net_counters: dict[str, NetCounters] | None = None
    links_down: frozenset[str] | None = None
    pressure: dict[str, Pressure] | None = None
    tcp: TcpCounts | None = None
    file_handles: FileHandles | None = None
    # The GPUs' GpuReading maps (agent.gpu.with_gpus, in the same worker thread); None: no GPU, or not read.
    gpus: list[WireDict] | None = None
    errors: int = 0


@dataclass(slots=True)
class Attempts:
    """Runs reading calls, counting and logging (once per field) the ones that raise."""

    errors: int = 0
    logged: set[str] = field(default_factory=set)

    def run(self, name: str, call: Callable[[], T]) -> T | None:
        """``call()``, or None (one error counted) if it raised."""
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - psutil and the /proc files fail many ways; a field must never kill the agent
            self.errors += 1
            if name not in self.logged:
                self.logged.add(name)
                log.warning("sampling %s failed, leaving it out: %r", name, exc)
            return None
