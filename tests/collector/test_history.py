"""Unit tests of the per-node history ring: order, capacity, its memory bound and its stored resolution."""

from __future__ import annotations

import math

import pytest

from collector.history import BYTES_PER_POINT, FLOAT32_MAX, LOAD_MAX, PERCENT_MAX, SERIES, HistoryRing, point_values
from collector.store.codec import Columns
from shared.messages import Heartbeat
from tests.support.messages import heartbeat

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

    def test_points_keep_arrival_order_whatever_their_stamps(self) -> None:
        """An earlier-stamped point is appended, not sorted in: a crafted stamp order costs O(1) (issue 13, 5b)."""
        ring = HistoryRing(5)
        ring.add(1, 10.0, VALUES)
        ring.add(3, 30.0, VALUES)
        ring.add(2, 20.0, VALUES)
        assert ring.to_history().sampled_at == [10.0, 30.0, 20.0]

    def test_a_full_ring_drops_its_oldest_arrival(self) -> None:
        """A full ring takes every new point and lets the one that arrived first fall out."""
        ring = HistoryRing(2)
        ring.add(5, 50.0, VALUES)
        ring.add(6, 60.0, VALUES)
        assert ring.add(7, 10.0, VALUES) is True
        assert ring.to_history().seq == [6, 7]

    def test_arrival_order_holds_after_the_ring_wraps(self) -> None:
        """After wrapping around, the ring still reads oldest arrival first."""
        ring = HistoryRing(3)
        for seq, at in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0)):
            ring.add(seq, at, VALUES)
        assert ring.add(9, 3.0, VALUES) is True
        assert ring.to_history().sampled_at == [4.0, 5.0, 3.0]

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

    def test_fifteen_minutes_at_1hz_fit_in_40_kib(self) -> None:
        """The documented bound: 900 points (15 min at 1 Hz) take 40 bytes each, under 40 KiB with headers."""
        ring = HistoryRing(900)
        for seq in range(1, 2000):
            ring.add(seq, float(seq), VALUES)
        assert BYTES_PER_POINT == 40
        assert 900 * 40 <= ring.nbytes() < 40 * 1024
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


def single(values: tuple[float | None, ...]) -> dict[str, float | None]:
    """``values`` stored in a one-point ring and read back through ``to_history``, by series name."""
    ring = HistoryRing(1)
    ring.add(1, 1.0, values)
    history = ring.to_history()
    return {name: getattr(history, name)[0] for name in SERIES}


class TestStoredResolution:
    def test_two_decimal_percents_and_loads_come_back_exactly(self) -> None:
        """Every percent 0.00-100.00, and loads with two decimals up to 42.9 million, read back as sent."""
        percents = [n / 100 for n in range(10_001)]
        loads = [n * 429_496 / 100 for n in range(10_001)]  # steps of 4294.96, up to 42,949,600.00
        ring = HistoryRing(10_001)
        for n in range(10_001):
            ring.add(n + 1, float(n), (percents[n], percents[-1 - n], loads[n], None, None, None, None))
        history = ring.to_history()
        assert history.cpu_percent == percents
        assert history.mem_percent == percents[::-1]
        assert history.load_1 == loads

    def test_heartbeat_values_survive_the_ring(self) -> None:
        """An agent's usual numbers (one-decimal percents, two-decimal load) equal the heartbeat's in history."""
        sample = Heartbeat(
            seq=1,
            sampled_at=1.0,
            cpu_percent=36.2,
            mem_percent=99.9,
            load_avg=[12.34, 1.0, 1.0],
            net_rx_bytes_per_s=1_500_000.0,
            disk_read_bytes_per_s=2048.5,
        )
        stored = single(point_values(sample))
        assert stored["cpu_percent"] == 36.2
        assert stored["mem_percent"] == 99.9
        assert stored["load_1"] == 12.34
        assert stored["net_rx_bytes_per_s"] == 1_500_000.0
        assert stored["disk_read_bytes_per_s"] == 2048.5
        assert stored["net_tx_bytes_per_s"] is None

    def test_finer_percents_and_loads_round_to_hundredths(self) -> None:
        """A third decimal is rounded to the nearest 0.01, not truncated."""
        stored = single((12.346, 0.004, 1.23456, None, None, None, None))
        assert stored["cpu_percent"] == 12.35
        assert stored["mem_percent"] == 0.0
        assert stored["load_1"] == 1.23

    def test_byte_rates_keep_float32_precision(self) -> None:
        """10 GB/s comes back within float32's 2**-24 relative step; whole rates below 2**24 exactly."""
        stored = single((None, None, None, 1e10, 16_777_215.0, 1234.3, 0.0))
        assert stored["net_rx_bytes_per_s"] is not None
        assert math.isclose(stored["net_rx_bytes_per_s"], 1e10, rel_tol=2**-24)
        assert stored["net_tx_bytes_per_s"] == 16_777_215.0
        assert stored["disk_read_bytes_per_s"] is not None
        assert math.isclose(stored["disk_read_bytes_per_s"], 1234.3, rel_tol=2**-24)
        assert stored["disk_write_bytes_per_s"] == 0.0

    def test_missing_values_stay_gaps_and_zero_stays_zero(self) -> None:
        """Not measured reads back as None in every column, also after the ring wraps; 0 is not a gap."""
        ring = HistoryRing(3)
        ring.add(1, 10.0, (None,) * 7)
        ring.add(2, 20.0, (0.0,) * 7)
        ring.add(3, 30.0, (None,) * 7)
        ring.add(4, 40.0, (None,) * 7)  # wraps: the first point falls out
        history = ring.to_history()
        for name in SERIES:
            assert getattr(history, name) == [0.0, None, None], name

    def test_out_of_range_values_are_clamped_not_gaps(self) -> None:
        """What a column cannot hold is clamped to the nearest value it can, and the history stays valid."""
        stored = single((-1.0, 655.35, 1e12, 1e300, math.inf, -math.inf, math.nan))
        assert stored["cpu_percent"] == 0.0
        assert stored["mem_percent"] == PERCENT_MAX == 655.34
        assert stored["load_1"] == LOAD_MAX
        assert stored["net_rx_bytes_per_s"] == FLOAT32_MAX
        assert stored["net_tx_bytes_per_s"] == FLOAT32_MAX
        assert stored["disk_read_bytes_per_s"] == -FLOAT32_MAX
        assert stored["disk_write_bytes_per_s"] is None

    def test_percent_over_100_is_kept_up_to_the_column_limit(self) -> None:
        """The schema refuses it, but the ring itself keeps 150 % as 150 %: it clamps only what it cannot hold."""
        stored = single((150.0, math.inf, math.inf, None, None, None, None))
        assert stored["cpu_percent"] == 150.0
        assert stored["mem_percent"] == PERCENT_MAX
        assert stored["load_1"] == LOAD_MAX

    def test_values_read_back_are_plain_floats(self) -> None:
        """to_wire hands msgpack Python floats (packed as float64) or None, never ints."""
        ring = HistoryRing(2)
        ring.add(1, 1.0, (0.0, 50.0, 2.0, 3.0, None, 1e10, 0.0))
        wire = ring.to_wire()
        for name in SERIES:
            assert all(v is None or type(v) is float for v in wire[name]), name
        assert wire == ring.to_history().model_dump()

    def test_resizing_through_points_loses_nothing_more(self) -> None:
        """Copying a ring point by point (as a new interval does) stores the very same numbers."""
        ring = HistoryRing(4)
        for seq in range(1, 6):
            ring.add(seq, float(seq), (seq * 1.111, 33.3, 0.07 * seq, 1234.3 * seq, 1e10 / seq, None, 7.0))
        copy = HistoryRing(8)
        for seq, at, values in ring.points():
            copy.add(seq, at, values)
        assert copy.to_wire() == ring.to_wire()
        assert [values for _, _, values in copy.points()] == [values for _, _, values in ring.points()]


class TestBulkLoad:
    def test_a_ring_loaded_from_store_columns_reads_as_if_each_point_was_added(self) -> None:
        """A restart refills the ring from the store's columns: the same points, the newest ``capacity`` of them."""
        points = [(seq, 100.0 + seq, (seq * 1.5, None, 0.25, 1e6 + seq, None, 0.0, 3.5)) for seq in range(1, 8)]
        cols = Columns.from_values([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
        loaded = HistoryRing(5)
        loaded.load(cols.seq, [us / 1e6 for us in cols.at_us], cols.series)
        added = HistoryRing(5)
        for seq, at, values in points:
            added.add(seq, at, values)
        assert loaded.to_wire() == added.to_wire()
        assert len(loaded) == 5
        loaded.add(8, 108.0, VALUES)  # and it goes on as a ring
        assert loaded.to_history().seq == [4, 5, 6, 7, 8]
