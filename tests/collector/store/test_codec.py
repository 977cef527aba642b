"""Columnar chunks and head batches: what is written is what is read, in the ring's widths, compactly."""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence

import pytest

from collector.store.assemble import merged, rollup_columns
from collector.store.codec import (
    FORMAT_VERSION,
    Batch,
    Columns,
    decode_batch,
    decode_batch_node,
    decode_batch_seqs,
    decode_buckets,
    decode_raw,
    encode_batch,
    encode_buckets,
    encode_raw,
    from_stored,
    present,
    quantize_rates,
    to_stored,
)
from collector.store.policy import rollup_points

T0 = 1_700_000_000.0


def columns(values: Sequence[Sequence[float | None]], t0: float = T0, first_seq: int = 1) -> Columns:
    """1-Hz points with ``values``, as stored columns."""
    return Columns.of([(first_seq + i, t0 + i, to_stored(v)) for i, v in enumerate(values)])


def noisy(n: int, seed: int = 3) -> list[tuple[float | None, ...]]:
    """``n`` samples of plausible, noisy values, some not measured."""
    rng = random.Random(seed)
    out: list[tuple[float | None, ...]] = []
    for i in range(n):
        out.append((round(rng.uniform(0, 100), 2), 40.25, None if i % 9 == 0 else round(rng.uniform(0, 8), 2),
                    rng.lognormvariate(8, 1), 0.0, None, float(i)))  # fmt: skip
    return out


class TestRawChunks:
    """Raw points survive encoding exactly (times to the microsecond)."""

    def test_round_trip(self) -> None:
        """Seq, time and every series come back as stored, missing values as missing."""
        cols = columns(noisy(300))
        back = decode_raw(encode_raw(cols))
        assert back.points() == cols.points()  # points(): NaN ("not measured") compares as None
        assert [from_stored(back.series[0][i], 0) for i in range(3)] == [v[0] for v in noisy(3)]
        assert from_stored(back.series[2][0], 2) is None

    def test_steady_data_packs_far_below_the_ring_width(self) -> None:
        """An hour of a steady 1-Hz node packs in well under the ring's 40 bytes a point."""
        values = [
            (20.0 + (i % 13) / 4, 41.5, 0.5, 1000.0 * (i % 7), 2000.0, 0.0, 4096.0 * (i % 3)) for i in range(3600)
        ]
        assert len(encode_raw(columns(values))) / 3600 < 4

    @pytest.mark.parametrize(
        ("value", "series", "stored"),
        [(-1.0, 0, 0), (1e9, 2, 2**32 - 2), (1e40, 3, 3.4028234663852886e38), (math.nan, 4, None)],
    )
    def test_out_of_range_values_clamp_like_the_ring(self, value: float, series: int, stored: float | None) -> None:
        """A value a column cannot hold is clamped to the nearest it can, never wrapped; NaN is "not measured"."""
        values: list[float | None] = [None] * 7
        values[series] = value
        assert present(to_stored(values)[series], series) == stored

    def test_a_damaged_chunk_is_a_value_error(self) -> None:
        """A chunk with a damaged byte raises ValueError naming what was expected, never garbage values."""
        blob = encode_raw(columns(noisy(2)), version=FORMAT_VERSION)  # v2's damage: test_codec_v2.py
        with pytest.raises(ValueError, match="expected"):
            decode_raw(blob[:5] + b"\x00" + blob[6:])


class TestHeadBatches:
    """One commit's samples of many nodes, found again by node."""

    def test_round_trip_and_node_lookup(self) -> None:
        """Three nodes' rows come back; node 7's rows are found by bisection."""
        cols = columns(noisy(6))
        batch = Batch(array("I", [3, 3, 7, 7, 7, 9]), array("I", [1, 1, 2, 2, 2, 4]), cols)
        back = decode_batch(encode_batch(batch))
        assert (back.node, back.inst, back.cols.points()) == (batch.node, batch.inst, cols.points())
        assert back.node_range(7) == (2, 5)
        assert back.node_range(8) == (5, 5)


class TestRollupColumns:
    """The fast rollup over columns gives exactly the reference rollup's numbers."""

    @pytest.mark.parametrize("step_s", [60.0, 3600.0, 7.0])
    def test_equals_the_reference_rollup(self, step_s: float) -> None:
        """Two hours of noisy points with gaps and missing values: same buckets both ways."""
        cols = columns(noisy(7200))
        points = cols.points()
        reference = rollup_points([p[1] for p in points], [[p[2 + s] for p in points] for s in range(7)], step_s)
        assert rollup_columns(cols, step_s) == reference

    def test_bucket_chunks_round_trip(self) -> None:
        """Counts, minimums, maximums and sums come back unchanged."""
        b = rollup_columns(columns(noisy(600)), 60.0)
        assert decode_buckets(encode_buckets(b)) == b

    def test_merged_drops_repeats_and_sorts(self) -> None:
        """The same points from a chunk and a head, and one out of order, come back once each, by time."""
        a = columns(noisy(5))
        late = columns(noisy(1), t0=T0 - 10, first_seq=99)
        out = merged([a, late, a.slice(2, 4)], T0 - 100, T0 + 3)
        assert list(out.seq) == [99, 1, 2, 3, 4]


class TestColumnConversion:
    """Converting a batch column by column gives exactly what converting each sample gives."""

    def test_column_conversion_equals_per_sample_conversion(self) -> None:
        """Edge values (negative, huge, NaN, None, exact hundredths) convert the same both ways."""
        edge: list[tuple[float | None, ...]] = [
            (-1.0, 100.0, 1e12, 1e40, -1e40, math.nan, None),
            (None, math.nan, 0.005, 0.0, 1.5, 3.4e38, 12.345678),
            *noisy(50),
        ]
        fast = Columns.from_values(list(range(len(edge))), [T0 + i for i in range(len(edge))], edge)
        slow = Columns.of([(i, T0 + i, to_stored(v)) for i, v in enumerate(edge)])
        assert fast.points() == slow.points()


class TestQuantizeRates:
    """Rates kept to fewer mantissa bits stay within the promised relative error; gaps stay gaps."""

    def test_relative_error_is_bounded_and_missing_stays_missing(self) -> None:
        """At 8 mantissa bits every rate is within 2**-9 of itself; NaN and the largest float32 stay as they are."""
        values: list[tuple[float | None, ...]] = [*noisy(200), (1.0, 1.0, 1.0, 3.4028234663852886e38, None, 0.0, 1.0)]
        cols = columns(values)
        exact = cols.points()
        codec_cols = cols.slice(0, len(cols))
        quantize_rates(codec_cols, 8)
        for before, after in zip(exact, codec_cols.points(), strict=True):
            assert before[:5] == after[:5]  # seq, time, cpu, mem, load untouched
            for b, a in zip(before[5:], after[5:], strict=True):
                assert (a is None) == (b is None)
                if b is not None and a is not None:
                    assert math.isfinite(a)
                    assert abs(a - b) <= abs(b) * 2**-9

    def test_full_precision_changes_nothing(self) -> None:
        """23 bits is float32's own mantissa: the rates are untouched."""
        cols = columns(noisy(50))
        copy = cols.slice(0, len(cols))
        quantize_rates(copy, 23)
        assert copy.points() == cols.points()


class TestBatchParts:
    def test_one_nodes_rows_and_the_seqs_read_alone_equal_the_whole_batch(self) -> None:
        """A history query's per-node read of a head batch, and the restart's seq read, see what a full decode sees."""
        rows = [(seq, 1_800_000_000.0 + seq, (12.5, None, 0.3, 1e3 + seq, 0.0, None, 7.0)) for seq in range(1, 31)]
        cols = Columns.from_values([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        node = array("I", sorted([1, 2, 2, 5] * 7 + [9, 9]))
        batch = Batch(node, array("I", range(30)), cols)
        blob = encode_batch(batch)
        whole = decode_batch(blob)
        for node_idx in (0, 1, 2, 5, 9, 10):
            lo, hi = whole.node_range(node_idx)
            part = decode_batch_node(blob, node_idx)
            assert list(part.node) == list(whole.node[lo:hi])
            assert list(part.inst) == list(whole.inst[lo:hi])
            assert part.cols.points() == whole.cols.slice(lo, hi).points()
        insts, seqs = decode_batch_seqs(blob)
        assert (list(insts), list(seqs)) == (list(whole.inst), list(whole.cols.seq))
