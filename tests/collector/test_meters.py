"""Unit tests of the health meters with a fake clock."""

from __future__ import annotations

import pytest

from collector.meters import LagMeter, RateMeter


class TestRateMeter:
    def test_rate_over_completed_seconds(self) -> None:
        """20 events per second over a 10 s window read as 20/s."""
        meter = RateMeter(window_s=10)
        for second in range(100, 111):
            for i in range(20):
                meter.record(second + i / 20)
        assert meter.rate_per_s(110.5) == pytest.approx(20.0)
        assert meter.total == 220

    def test_rate_falls_to_zero_when_events_stop(self) -> None:
        """After a silent window, the rate is zero."""
        meter = RateMeter(window_s=5)
        meter.record(10.0, count=50)
        assert meter.rate_per_s(30.0) == 0.0


class TestLagMeter:
    def test_reports_last_and_recent_max(self) -> None:
        """The max covers the recent window only; old spikes age out."""
        meter = LagMeter(window_s=10.0)
        meter.record(0.0, 0.5)
        meter.record(5.0, 0.01)
        assert meter.max_s(5.0) == 0.5
        assert meter.last_s == 0.01
        meter.record(20.0, 0.02)
        assert meter.max_s(20.0) == 0.02
