"""bench/_stats.py: the one percentile every bench table is printed with."""

from __future__ import annotations

import math

import pytest

from bench._stats import median, percentile


class TestPercentile:
    """Nearest rank: always a measured value, never interpolated."""

    @pytest.mark.parametrize(
        ("q", "expected"),
        [(0.0, 1.0), (0.07, 7.0), (0.5, 50.0), (0.99, 99.0), (0.999, 100.0), (1.0, 100.0)],
    )
    def test_ranks_of_one_to_hundred(self, q: float, expected: float) -> None:
        """The p-th percentile of 1..100 is the value p, and the top end is the maximum."""
        assert percentile(range(1, 101), q) == expected

    def test_reports_a_measured_value(self) -> None:
        """A p50 of two runs is one of them, not their mean (the median is the mean)."""
        assert percentile([10.0, 20.0], 0.5) == 10.0
        assert median([10.0, 20.0]) == 15.0

    def test_order_does_not_matter(self) -> None:
        """Unsorted input gives the same answer as sorted input."""
        assert percentile([5.0, 1.0, 4.0, 2.0, 3.0], 0.8) == 4.0

    def test_empty_run_prints_nan(self) -> None:
        """No samples print as nan, never as a reassuring 0 ms."""
        assert math.isnan(percentile([], 0.99))
        assert math.isnan(median([]))

    @pytest.mark.parametrize("q", [-0.01, 1.01, 99.0])
    def test_refuses_a_percent_for_a_fraction(self, q: float) -> None:
        """A caller passing 99 instead of 0.99 gets an error naming what is accepted."""
        with pytest.raises(ValueError, match="expected a quantile from 0 to 1"):
            percentile([1.0], q)
