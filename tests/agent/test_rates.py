"""Rate maths: CPU percent from cpu_times deltas and bytes/s from counters, with recorded numbers."""

from __future__ import annotations

import pytest

from agent.rates import CounterRateTracker, CpuRateTracker, cpu_busy_percent


def times(user: float, system: float, idle: float, iowait: float = 0.0, guest: float = 0.0) -> dict[str, float]:
    return {"user": user, "nice": 0.0, "system": system, "idle": idle, "iowait": iowait, "guest": guest}


class TestCpuBusyPercent:
    def test_busy_share_of_elapsed_time(self) -> None:
        """Busy time over total time, with float division: 3 busy of 4 seconds is 75 %."""
        assert cpu_busy_percent(times(10, 5, 100), times(12, 6, 101)) == pytest.approx(75.0)

    def test_iowait_counts_as_idle(self) -> None:
        """iowait is not busy, as in psutil's _cpu_busy_time."""
        assert cpu_busy_percent(times(0, 0, 0), times(1, 0, 2, iowait=1)) == pytest.approx(25.0)

    def test_guest_is_not_counted_twice(self) -> None:
        """Linux already counts guest time in user time, so it is left out of the total."""
        assert cpu_busy_percent(times(0, 0, 0), times(2, 0, 2, guest=2)) == pytest.approx(50.0)

    def test_negative_field_delta_clamps_to_zero(self) -> None:
        """A counter that went backwards (psutil issue #392) counts as zero, not negative."""
        assert cpu_busy_percent(times(10, 5, 100), times(9, 6, 101)) == pytest.approx(50.0)

    def test_no_elapsed_time_gives_none(self) -> None:
        """Identical readings give no figure rather than a division by zero or a fake 0."""
        assert cpu_busy_percent(times(1, 1, 1), times(1, 1, 1)) is None


class TestCpuRateTracker:
    def test_first_reading_has_no_rates(self) -> None:
        """The first reading only sets the baseline: None, never 0."""
        rates = CpuRateTracker().update(times(1, 1, 1), [times(1, 1, 1)])
        assert rates.total_percent is None
        assert rates.per_core_percent is None

    def test_second_reading_gives_total_and_per_core(self) -> None:
        """From the second reading on, total and per-core figures come from the deltas."""
        tracker = CpuRateTracker()
        tracker.update(times(0, 0, 0), [times(0, 0, 0), times(0, 0, 0)])
        rates = tracker.update(times(1, 0, 1), [times(1, 0, 0), times(0, 0, 1)])
        assert rates.total_percent == pytest.approx(50.0)
        assert rates.per_core_percent == pytest.approx([100.0, 0.0])

    def test_core_count_change_rebaselines_per_core(self) -> None:
        """A hot-plugged core makes per-core figures absent for one reading, then they resume."""
        tracker = CpuRateTracker()
        tracker.update(times(0, 0, 0), [times(0, 0, 0)])
        changed = tracker.update(times(1, 0, 1), [times(1, 0, 0), times(0, 0, 1)])
        assert changed.per_core_percent is None
        assert changed.total_percent == pytest.approx(50.0)
        resumed = tracker.update(times(2, 0, 2), [times(2, 0, 0), times(0, 0, 2)])
        assert resumed.per_core_percent == pytest.approx([100.0, 0.0])

    def test_missing_reading_is_none(self) -> None:
        """A failed cpu_times call gives no figure and the next good reading starts a new baseline."""
        tracker = CpuRateTracker()
        tracker.update(times(0, 0, 0), None)
        assert tracker.update(None, None).total_percent is None
        assert tracker.update(times(1, 0, 1), None).total_percent is None
        assert tracker.update(times(2, 0, 1), None).total_percent == pytest.approx(100.0)


class TestCounterRateTracker:
    def test_first_reading_has_no_rates(self) -> None:
        """The first reading only sets the baseline."""
        rates = CounterRateTracker().update(10.0, {"eth0": (100, 200)})
        assert rates.total is None
        assert rates.per_device == {}

    def test_rates_are_deltas_over_monotonic_time(self) -> None:
        """Bytes/s is the counter delta divided by the elapsed monotonic seconds, per device and summed."""
        tracker = CounterRateTracker()
        tracker.update(10.0, {"eth0": (1000, 2000), "wlan0": (0, 0)})
        rates = tracker.update(12.0, {"eth0": (3000, 2500), "wlan0": (500, 100)})
        assert rates.per_device == {"eth0": (1000.0, 250.0), "wlan0": (250.0, 50.0)}
        assert rates.total == (1250.0, 300.0)

    def test_counter_reset_rebaselines_that_device(self) -> None:
        """A counter that went down (reset or wrap) drops that device for one reading, no negative rate."""
        tracker = CounterRateTracker()
        tracker.update(0.0, {"eth0": (5000, 5000), "eth1": (0, 0)})
        rates = tracker.update(1.0, {"eth0": (10, 20), "eth1": (100, 100)})
        assert rates.per_device == {"eth1": (100.0, 100.0)}
        assert rates.total == (100.0, 100.0)
        after = tracker.update(2.0, {"eth0": (110, 40), "eth1": (100, 100)})
        assert after.per_device["eth0"] == (100.0, 20.0)

    def test_device_appearing_and_disappearing(self) -> None:
        """A new device only sets its baseline; a vanished device is forgotten, not summed as zero."""
        tracker = CounterRateTracker()
        tracker.update(0.0, {"sda": (0, 0)})
        rates = tracker.update(1.0, {"sda": (10, 10), "sdb": (10**9, 10**9)})
        assert rates.per_device == {"sda": (10.0, 10.0)}
        rates = tracker.update(2.0, {"sdb": (10**9 + 4, 10**9 + 8)})
        assert rates.per_device == {"sdb": (4.0, 8.0)}

    def test_none_counters_give_no_rates(self) -> None:
        """disk_io_counters() returning None gives no figures and no stale baseline."""
        tracker = CounterRateTracker()
        tracker.update(0.0, {"sda": (0, 0)})
        assert tracker.update(1.0, None).total is None
        assert tracker.update(2.0, {"sda": (100, 100)}).total is None
        assert tracker.update(3.0, {"sda": (150, 100)}).total == (50.0, 0.0)

    def test_no_elapsed_time_keeps_old_baseline(self) -> None:
        """dt <= 0 is guarded: no rate, and the next reading measures from the older baseline."""
        tracker = CounterRateTracker()
        tracker.update(5.0, {"eth0": (0, 0)})
        assert tracker.update(5.0, {"eth0": (10, 10)}).total is None
        assert tracker.update(7.0, {"eth0": (40, 20)}).total == (20.0, 10.0)
