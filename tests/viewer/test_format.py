"""Tests of viewer.format: what a person reads in the table."""

from __future__ import annotations

import pytest

from viewer.format import (
    format_age,
    format_bytes,
    format_duration,
    format_load,
    format_percent,
    format_rate,
    format_rx_tx,
    fullest_disk_name,
    fullest_disk_percent,
)


class TestFormat:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, ""),
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (1000 * 1024, "1000 KiB"),
            (1023 * 1024, "1023 KiB"),
            (8 * 1024**3, "8 GiB"),
        ],
    )
    def test_bytes(self, value: float | None, text: str) -> None:
        """Sizes use binary prefixes and three significant digits; None is an empty cell."""
        assert format_bytes(value) == text

    def test_rates(self) -> None:
        """Rates append /s, and rx/tx marks an unmeasured side with a dash."""
        assert format_rate(2048.0) == "2 KiB/s"
        assert format_rx_tx(1536.0, None) == "↓ 1.5 KiB/s  ↑ -"
        assert format_rx_tx(None, None) == ""

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (None, ""),
            (-5, "0 s"),
            (7, "7 s"),
            (307, "5 m 07 s"),
            (4 * 3600 + 300, "4 h 05 m"),
            (3 * 86400 + 4 * 3600, "3 d 4 h"),
        ],
    )
    def test_duration(self, seconds: float | None, text: str) -> None:
        """Uptime shows at most two units."""
        assert format_duration(seconds) == text

    @pytest.mark.parametrize(
        ("age_s", "text"),
        [
            (None, "never"),
            (0.4, "just now"),
            (3.9, "3 s ago"),
            (125, "2 m ago"),
            (7300, "2 h ago"),
            (200_000, "2 d ago"),
        ],
    )
    def test_age(self, age_s: float | None, text: str) -> None:
        """Ages read like '3 s ago'."""
        assert format_age(age_s) == text

    def test_percent_and_load(self) -> None:
        """Percentages keep one decimal; load shows the three averages."""
        assert format_percent(42.0) == "42.0 %"
        assert format_percent(None) == ""
        assert format_load([0.5, 0.25, 1.0]) == "0.50 0.25 1.00"
        assert format_load(None) == ""

    def test_fullest_disk(self) -> None:
        """The fullest disk wins; empty (0-byte) disks are ignored; no disk is None, not 0."""
        disks = {"/": [100, 42], "/data": [10, 9], "/empty": [0, 0]}
        assert fullest_disk_percent(disks) == pytest.approx(90.0)
        assert fullest_disk_name(disks) == "/data"
        assert fullest_disk_percent({}) is None
        assert fullest_disk_percent({"/empty": [0, 0]}) is None
        assert fullest_disk_name(None) is None


class TestDisks:
    @pytest.mark.parametrize(
        ("values", "percent"),
        [
            ([100, 50], 50.0),  # [total, used]: used / total
            ([100, 50, 30], 62.5),  # [total, used, available], like df: used / (used + available)
            ([100, 0, 0], None),
            ([0, 0], None),
        ],
    )
    def test_fullness_like_df(self, values: list[int], percent: float | None) -> None:
        """With three values the fullest disk reads as df does (reserved blocks count as full)."""
        assert fullest_disk_percent({"/": values}) == percent
