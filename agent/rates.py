"""Rate maths for the agent: CPU percent from ``cpu_times()`` deltas and bytes/s from I/O counters.

Pure: every function takes the counters and the monotonic time it was read at,
and nothing here calls psutil or reads a clock. Not here: reading the
counters (see ``agent.sampler``) or rounding for the wire.

The CPU maths follows psutil's ``_cpu_times_deltas`` / ``_cpu_busy_time``
(psutil/__init__.py): per-field deltas clamp at zero, guest time is already
inside user time on Linux so it is not counted twice, idle and iowait are not
busy, and a zero total delta gives no figure rather than a made-up 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CpuTimes = Mapping[str, float]
"""One ``cpu_times()`` reading as ``namedtuple._asdict()``: field name -> seconds."""

# Linux counts guest time inside user/nice already (psutil issue #1176).
_DOUBLE_COUNTED_FIELDS = ("guest", "guest_nice")
_IDLE_FIELDS = ("idle", "iowait")


def cpu_busy_percent(before: CpuTimes, after: CpuTimes) -> float | None:
    """Return the busy share of the time between two readings, 0-100, or None if no time passed."""
    deltas = {name: max(0.0, float(after[name]) - float(before[name])) for name in after if name in before}
    total = sum(value for name, value in deltas.items() if name not in _DOUBLE_COUNTED_FIELDS)
    if total <= 0.0:
        return None
    idle = sum(deltas.get(name, 0.0) for name in _IDLE_FIELDS)
    busy = max(0.0, total - idle)
    return min(100.0, busy / total * 100.0)


@dataclass(frozen=True, slots=True)
class CpuRates:
    """CPU busy percent for the whole machine and per core; None where there is no baseline yet."""

    total_percent: float | None
    per_core_percent: list[float] | None


class CpuRateTracker:
    """Turns successive ``cpu_times()`` readings into busy percentages.

    Keeps only the previous reading: the first call returns no figures, as
    ``psutil.cpu_percent(interval=None)`` does, instead of a bogus 0.
    """

    def __init__(self) -> None:
        self._total: CpuTimes | None = None
        self._per_core: Sequence[CpuTimes] | None = None

    def update(self, total: CpuTimes | None, per_core: Sequence[CpuTimes] | None) -> CpuRates:
        """Record a reading and return the rates since the previous one."""
        total_percent = None
        if total is not None and self._total is not None:
            total_percent = cpu_busy_percent(self._total, total)
        per_core_percent: list[float] | None = None
        # A changed core count (hotplug) re-baselines: the old cores do not line up.
        if per_core is not None and self._per_core is not None and len(per_core) == len(self._per_core):
            values = [cpu_busy_percent(old, new) for old, new in zip(self._per_core, per_core, strict=True)]
            if all(value is not None for value in values):
                per_core_percent = [value for value in values if value is not None]
        self._total = total
        self._per_core = per_core
        return CpuRates(total_percent, per_core_percent)


CounterPair = tuple[int, int]
"""Two monotonically increasing byte counters of one device: (read, write) or (rx, tx)."""


@dataclass(frozen=True, slots=True)
class CounterRates:
    """Bytes/s per device and summed; a device without a valid baseline is left out of both."""

    total: tuple[float, float] | None
    per_device: dict[str, tuple[float, float]]


class CounterRateTracker:
    """Bytes/s from cumulative counters keyed by device name, over monotonic time.

    A device seen for the first time only sets its baseline; a device that
    vanished is forgotten; a counter that went down (reset, 32-bit wrap,
    interface re-created) re-baselines that device instead of reporting a
    negative or enormous rate. ``None`` counters (psutil's
    ``disk_io_counters()`` on a machine without disks) give no figures.
    """

    def __init__(self) -> None:
        self._previous: dict[str, CounterPair] = {}
        self._previous_at: float | None = None

    def update(self, now: float, counters: Mapping[str, CounterPair] | None) -> CounterRates:
        """Record counters read at monotonic time ``now`` and return rates since the last reading."""
        previous, previous_at = self._previous, self._previous_at
        if counters is None:
            self._previous, self._previous_at = {}, None
            return CounterRates(None, {})
        self._previous, self._previous_at = dict(counters), now
        if previous_at is None:
            return CounterRates(None, {})
        elapsed_s = now - previous_at
        if elapsed_s <= 0.0:
            # No time passed (or the clock is not monotonic): keep the older baseline.
            self._previous, self._previous_at = previous, previous_at
            return CounterRates(None, {})
        per_device: dict[str, tuple[float, float]] = {}
        for name, (first, second) in counters.items():
            old = previous.get(name)
            if old is None:
                continue
            delta_first, delta_second = first - old[0], second - old[1]
            if delta_first < 0 or delta_second < 0:
                continue
            per_device[name] = (delta_first / elapsed_s, delta_second / elapsed_s)
        if not per_device:
            return CounterRates(None, {})
        total = (sum(rate[0] for rate in per_device.values()), sum(rate[1] for rate in per_device.values()))
        return CounterRates(total, per_device)
