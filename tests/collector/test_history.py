"""Unit tests of the per-node history ring: order, capacity and its memory bound."""

from __future__ import annotations

import pytest

from collector.history import BYTES_PER_POINT, SERIES, HistoryRing, point_values
from tests.collector.helpers import heartbeat

VALUES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)


class TestHistoryRing:
    def test_keeps_points_oldest_first(self) -> None:
        """Points come back in sampled_at order with their seq."""
        ring = HistoryRing(4)
        for seq in (1, 2, 3):
            ring.add(seq, 100.0 + seq, VALUES)
        history = ring.to_history()
        assert history.seq == [1, 2, 3]
        assert history.sampled_at == [101.0, 102.0, 103.0]
        assert history.cpu_percent == [1.0, 1.0, 1.0]

    def test_oldest_falls_out_when_full(self) -> None:
        """A full ring drops its oldest point for each new one."""
        ring = HistoryRing(3)
        for seq in range(1, 6):
            ring.add(seq, float(seq), VALUES)
        assert ring.to_history().seq == [3, 4, 5]
        assert len(ring) == 3

    def test_out_of_order_point_is_inserted_in_place(self) -> None:
        """A replayed, older sample lands between the points it belongs between."""
        ring = HistoryRing(5)
        ring.add(1, 10.0, VALUES)
        ring.add(3, 30.0, VALUES)
        ring.add(2, 20.0, VALUES)
        assert ring.to_history().sampled_at == [10.0, 20.0, 30.0]

    def test_too_old_point_is_dropped_from_full_ring(self) -> None:
        """A sample older than everything a full ring keeps is refused, not inserted."""
        ring = HistoryRing(2)
        ring.add(5, 50.0, VALUES)
        ring.add(6, 60.0, VALUES)
        assert ring.add(1, 10.0, VALUES) is False
        assert ring.to_history().seq == [5, 6]

    def test_out_of_order_insert_in_wrapped_full_ring(self) -> None:
        """Insertion stays ordered after the ring has wrapped around."""
        ring = HistoryRing(3)
        for seq, at in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0)):
            ring.add(seq, at, VALUES)
        assert ring.add(9, 3.0, VALUES) is True
        assert ring.to_history().sampled_at == [3.0, 4.0, 5.0]

    def test_missing_values_become_nil(self) -> None:
        """A value that was not measured is a gap (None), never zero."""
        ring = HistoryRing(2)
        ring.add(1, 1.0, (None, 2.0, None, None, None, None, None))
        history = ring.to_history()
        assert history.cpu_percent == [None]
        assert history.mem_percent == [2.0]

    def test_last_n_returns_newest_points(self) -> None:
        """Asking for the last N points gives the newest N, oldest first."""
        ring = HistoryRing(10)
        for seq in range(1, 8):
            ring.add(seq, float(seq), VALUES)
        assert ring.to_history(3).seq == [5, 6, 7]
        assert ring.to_history(0).seq == []

    def test_fifteen_minutes_at_1hz_fit_in_64_kib(self) -> None:
        """The documented bound: 900 points (15 min at 1 Hz) take under 64 KiB, headers included."""
        ring = HistoryRing(900)
        for seq in range(1, 2000):
            ring.add(seq, float(seq), VALUES)
        assert BYTES_PER_POINT == 72
        assert ring.nbytes() <= 64 * 1024
        assert len(ring) == 900

    def test_point_values_follow_series_order(self) -> None:
        """The heartbeat's numbers map onto the History columns by name."""
        values = point_values(heartbeat(1, cpu=12.5))
        assert dict(zip(SERIES, values, strict=True))["cpu_percent"] == 12.5
        assert dict(zip(SERIES, values, strict=True))["load_1"] == 0.5
        assert dict(zip(SERIES, values, strict=True))["disk_read_bytes_per_s"] is None

    def test_zero_capacity_is_a_programming_error(self) -> None:
        """A ring must hold at least one point."""
        with pytest.raises(RuntimeError, match="capacity"):
            HistoryRing(0)
