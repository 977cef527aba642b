"""The monotonic tick schedule: due times, and late ticks counted and skipped."""

from __future__ import annotations

import pytest

from agent.schedule import TickSchedule


class TestTickSchedule:
    def test_ticks_are_due_at_start_plus_n_intervals(self) -> None:
        """Sample N is due at start + N * interval, with no drift from wake-up jitter."""
        schedule = TickSchedule(start=100.0, interval_s=1.0)
        assert schedule.next_due == 101.0
        assert schedule.poll(100.5) is None
        assert schedule.poll(101.02) == 1
        assert schedule.next_due == 102.0
        assert schedule.poll(102.3) == 2
        assert schedule.next_due == 103.0
        assert schedule.late_ticks == 0

    def test_late_ticks_are_counted_and_skipped_not_bunched(self) -> None:
        """After a 3.2 s stall only the current tick is sampled; the two missed ones are counted late."""
        schedule = TickSchedule(start=0.0, interval_s=1.0)
        assert schedule.poll(1.0) == 1
        assert schedule.poll(4.2) == 4
        assert schedule.late_ticks == 2
        assert schedule.poll(4.3) is None
        assert schedule.next_due == 5.0

    def test_tick_past_tolerance_is_skipped_too(self) -> None:
        """Waking 0.7 of an interval late skips that tick as well and waits for the next slot."""
        schedule = TickSchedule(start=0.0, interval_s=1.0)
        assert schedule.poll(1.7) is None
        assert schedule.late_ticks == 1
        assert schedule.next_due == 2.0
        assert schedule.poll(2.0) == 2

    def test_short_interval_float_boundaries(self) -> None:
        """At 0.1 s intervals, waking exactly on each due time samples every tick once."""
        schedule = TickSchedule(start=0.0, interval_s=0.1)
        ticks = [schedule.poll(schedule.next_due) for _ in range(50)]
        assert ticks == list(range(1, 51))
        assert schedule.late_ticks == 0

    def test_rejects_non_positive_interval(self) -> None:
        """A zero interval is a programming error."""
        with pytest.raises(RuntimeError, match="interval_s"):
            TickSchedule(start=0.0, interval_s=0.0)
