"""Columnar chunks: what is written is what is read, in the ring's widths, compactly."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from collector.store.codec import decode_buckets, decode_raw, encode_buckets, encode_raw, from_stored, to_stored
from collector.store.policy import rollup_points

T0 = 1_700_000_000.0


def stored_series(values: Sequence[Sequence[float | None]]) -> list[list[int | float | None]]:
    """Per-series columns, in stored units, of a list of samples' values."""
    rows = [to_stored(v) for v in values]
    return [[row[s] for row in rows] for s in range(7)]


class TestRawChunks:
    """Raw points survive encoding exactly (times to the microsecond)."""

    def test_round_trip(self) -> None:
        """Seq, time and every series come back as stored, missing values as None."""
        values: list[tuple[float | None, ...]] = [(12.34, 50.0, 1.25, 1e6 + i, None, 0.0, 3.5) for i in range(300)]
        values[7] = (None, None, None, None, None, None, None)
        at = [T0 + i + 0.123456 for i in range(300)]
        seq, at_back, series = decode_raw(encode_raw(list(range(1, 301)), at, stored_series(values)))
        assert seq == list(range(1, 301))
        assert max(abs(a - b) for a, b in zip(at, at_back, strict=True)) < 1e-6
        assert series == stored_series(values)
        assert [from_stored(series[0][i], 0) for i in (0, 7)] == [12.34, None]

    def test_regular_data_packs_far_below_the_ring_width(self) -> None:
        """An hour of a steady 1-Hz node packs in well under the ring's 40 bytes a point."""
        n = 3600
        values = [(20.0 + (i % 13) / 4, 41.5, 0.5, 1000.0 * (i % 7), 2000.0, 0.0, 4096.0 * (i % 3)) for i in range(n)]
        blob = encode_raw(list(range(1, n + 1)), [T0 + i for i in range(n)], stored_series(values))
        assert len(blob) / n < 4

    @pytest.mark.parametrize(
        ("value", "series", "stored"),
        [(-1.0, 0, 0), (1e9, 2, 2**32 - 2), (1e40, 3, 3.4028234663852886e38), (math.nan, 4, None)],
    )
    def test_out_of_range_values_clamp_like_the_ring(self, value: float, series: int, stored: float | None) -> None:
        """A value a column cannot hold is clamped to the nearest it can, never wrapped; NaN is missing."""
        values: list[float | None] = [None] * 7
        values[series] = value
        assert to_stored(values)[series] == stored

    def test_a_damaged_chunk_is_a_value_error(self) -> None:
        """A chunk with a damaged byte raises ValueError naming what was expected, never garbage values."""
        blob = encode_raw([1, 2], [T0, T0 + 1], stored_series([(1.0,) * 7, (2.0,) * 7]))
        with pytest.raises(ValueError, match="expected"):
            decode_raw(blob[:5] + b"\x00" + blob[6:])


class TestBucketChunks:
    """Rollup buckets survive encoding exactly."""

    def test_round_trip(self) -> None:
        """Counts, minimums, maximums and sums come back unchanged."""
        at = [T0 + i for i in range(600)]
        values = [((i * 7) % 100.0, 33.0, None, float(i), 1.5, 0.0, 2.0) for i in range(600)]
        b = rollup_points(at, stored_series(values), 60.0)
        assert decode_buckets(encode_buckets(b)) == b
