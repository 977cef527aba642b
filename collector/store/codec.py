"""Columnar chunk encoding for the store: raw points and rollup buckets to compact bytes and back.

A chunk is one node's points as columns (``Columns``), in the widths of
``collector.history``: percents and load as integer hundredths, rates as float32,
"not measured" as the all-ones integer or NaN. The first byte is the chunk's version:

- v1 (head batches, rollup buckets, partial raw chunks): seq and time delta-encoded,
  every column byte-shuffled (all first bytes, then all second bytes, as blosc does),
  one zlib stream. Cheapest to encode and decode.
- v2 (consolidated raw chunks, ``collector.store.codec_v2``): every column as small
  integers first (tenths for rates, deltas or deltas of deltas, gcd, offset), chosen
  per column from the data. Lossless for the ring's float32; 12-16 % smaller than v1 on
  a realistic fleet's data, 2-4 % on white noise (bench/store_codecs.py, store_size.py).

A head batch (``Batch``) is one commit's samples of every node, with node and
instance columns, sorted by them, so one node's rows are a bisect away.

Times are kept in whole microseconds (an epoch float64 resolves ~0.24 us, so a
time read back differs from the original by at most 0.5 us).

Pure: bytes in, columns out. Not here: SQL, rollup maths (``collector.store.policy``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import struct
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.history import FLOAT32_MAX, LOAD_MAX, PERCENT_MAX, SERIES
from collector.store.codec_v2 import (
    RAW_VERSION,
    ZLIB,
    column_of,
    decode_chunk,
    deltas,
    encode_chunk,
    packed,
    quantize_float32,
    rows,
)
from collector.store.policy import Buckets, StoredValue

# Head batches, rollup buckets and partial raw chunks: version 1. Consolidated raw chunks are
# version 2 (``codec_v2``); the first byte tells them apart, so chunks of both stay readable.
FORMAT_VERSION = 1
_HEADER = struct.Struct("<BI")  # format version, point count
_F32 = struct.Struct("<f")
# Stored width per series, as in collector.history: "H"/"I" hundredths, "f" float32.
TYPECODES: tuple[str, ...] = ("H", "H", "I", "f", "f", "f", "f")
SCALES: tuple[int, ...] = tuple(1 if code == "f" else 100 for code in TYPECODES)
MISSING: tuple[int | None, ...] = tuple(
    None if code == "f" else 2 ** (8 * array(code).itemsize) - 1 for code in TYPECODES
)
_MAXES: tuple[float, ...] = (PERCENT_MAX, PERCENT_MAX, LOAD_MAX, FLOAT32_MAX, FLOAT32_MAX, FLOAT32_MAX, FLOAT32_MAX)
# zlib levels, measured on an hour of noisy 1-Hz points: 6 (its default) is 2.4 % smaller than 1
# at 1.7x the CPU, and 9 gains 0.4 % more at 4x. Rows rewritten later (head batches, partial rows)
# use FAST; consolidated rows, which stay for days, use SMALL.
FAST = 1
SMALL = 6
assert len(TYPECODES) == len(SERIES)
_RAW_CODES = ("q", "q", *TYPECODES)  # seq, at_us, then the series
_RAW_MISSING = (None, None, *MISSING)
# Delta orders to choose from: seq and time step steadily (their deltas' deltas are about 0);
# gauges and rates as they are or as deltas (order 2 was never the smallest for them on the fleet data).
_RAW_ORDERS = (range(1, 3), range(1, 3), *[range(2)] * len(SERIES))


def to_stored(values: Sequence[float | None]) -> tuple[int | float, ...]:
    """A sample's values as the columns hold them: clamped as ``collector.history`` clamps, missing as sentinels."""
    out: list[int | float] = []
    for value, scale, top, missing in zip(values, SCALES, _MAXES, MISSING, strict=True):
        if missing is None:
            if value is None or math.isnan(value):
                out.append(math.nan)
            else:
                # Rounded to float32 here, so a head batch and a chunk hold the very same number.
                out.append(_F32.unpack(_F32.pack(max(-top, min(top, value))))[0])
        elif value is None or math.isnan(value):
            out.append(missing)
        else:
            out.append(round(max(0.0, min(top, value)) * scale))
    return tuple(out)


def _stored_column(values: Sequence[float | None], series: int) -> array[Any]:
    """``to_stored`` for one series of many samples, with the same clamping."""
    missing, top = MISSING[series], _MAXES[series]
    if missing is None:
        nan, copysign, isnan = math.nan, math.copysign, math.isnan
        # array("f") rounds to float32 in C; out-of-range values are clamped first (it would make them inf).
        return array("f", [
            nan if v is None else v if -top <= v <= top else nan if isnan(v) else copysign(top, v) for v in values
        ])  # fmt: skip
    high, isnan = missing - 1, math.isnan
    return array(TYPECODES[series], [
        missing if v is None or isnan(v) else round(v * 100) if 0.0 <= v <= top else 0 if v < 0 else high
        for v in values
    ])  # fmt: skip


def quantize_rates(cols: Columns, mantissa_bits: int) -> None:
    """Round the float32 rate columns in place to ``mantissa_bits`` of mantissa (23: unchanged, lossless).

    A relative error of at most 2**-(mantissa_bits + 1): the low mantissa bits of a measured rate are
    noise, and they are most of what does not compress. NaN and inf are left alone.
    """
    for s, column in enumerate(cols.series):
        if MISSING[s] is None:
            quantize_float32(column, mantissa_bits)


def from_stored(value: StoredValue | None, series: int) -> float | None:
    """A column value back in its unit, None for "not measured": n / 100 is the float nearest n hundredths."""
    missing = MISSING[series]
    if value is None or value == missing or (missing is None and math.isnan(value)):
        return None
    return value / 100 if missing is not None else float(value)


def values_of(column: array[Any], series: int) -> list[float | None]:
    """A stored column in its unit, None for "not measured": ``from_stored`` as one comprehension."""
    missing = MISSING[series]
    if missing is None:
        isnan = math.isnan
        return [None if isnan(v) else v for v in column]
    return [None if v == missing else v / 100 for v in column]


def present(value: StoredValue, series: int) -> StoredValue | None:
    """A column value, None if it is the series' "not measured" sentinel (stored units kept)."""
    missing = MISSING[series]
    if missing is None:
        return None if math.isnan(value) else value
    return None if value == missing else value


@dataclass(slots=True)
class Columns:
    """Raw points as columns: seq, sampled_at in microseconds, and each series in stored units with sentinels."""

    seq: array[int]
    at_us: array[int]
    series: list[array[Any]]

    @classmethod
    def empty(cls) -> Columns:
        """No points."""
        return cls(array("q"), array("q"), [array(code) for code in TYPECODES])

    @classmethod
    def of(cls, rows: Sequence[tuple[int, float, Sequence[int | float]]]) -> Columns:
        """Columns of ``(seq, sampled_at, to_stored(values))`` rows."""
        return cls(
            array("q", [r[0] for r in rows]),
            array("q", [round(r[1] * 1e6) for r in rows]),
            [array(code, [r[2][s] for r in rows]) for s, code in enumerate(TYPECODES)],
        )

    @classmethod
    def from_values(
        cls, seq: Sequence[int], sampled_at: Sequence[float], values: Sequence[Sequence[float | None]]
    ) -> Columns:
        """Columns of samples' raw values: ``to_stored`` applied column by column (one comprehension each)."""
        if not seq:
            return cls.empty()
        by_series = list(zip(*values, strict=True))
        return cls(
            array("q", seq),
            array("q", [round(t * 1e6) for t in sampled_at]),
            [_stored_column(column, s) for s, column in enumerate(by_series)],
        )

    def __len__(self) -> int:
        return len(self.seq)

    def slice(self, lo: int, hi: int) -> Columns:
        """Points [lo, hi): array slices, copied in C."""
        return Columns(self.seq[lo:hi], self.at_us[lo:hi], [c[lo:hi] for c in self.series])

    def extend(self, other: Columns) -> None:
        """Append ``other``'s points."""
        self.seq.extend(other.seq)
        self.at_us.extend(other.at_us)
        for mine, theirs in zip(self.series, other.series, strict=True):
            mine.extend(theirs)

    def take(self, order: Sequence[int]) -> Columns:
        """The points at ``order``'s positions, in that order."""
        return Columns(
            array("q", map(self.seq.__getitem__, order)),
            array("q", map(self.at_us.__getitem__, order)),
            [array(c.typecode, map(c.__getitem__, order)) for c in self.series],
        )

    def points(self) -> list[tuple[Any, ...]]:
        """``(seq, sampled_at, v0 .. v6)`` tuples, values in stored units, None where not measured."""
        values = [[present(v, s) for v in column] for s, column in enumerate(self.series)]
        return list(zip(self.seq, (us / 1e6 for us in self.at_us), *values, strict=True))


def encode_raw(cols: Columns, level: int = SMALL, *, version: int | None = None, compressor: int = ZLIB) -> bytes:
    """One node's raw points as a compressed chunk (``level`` of zlib, or lzma's preset).

    ``version`` None picks by ``level``: ``FAST`` chunks are partials, rewritten within about an hour
    and read back at restart, so they keep v1, the cheapest to encode and decode; the rest (the
    consolidated chunks that make the raw tier's size) are v2, about 2 us a sample more to encode
    (bench/store_codecs.py).
    """
    if version is None:
        version = FORMAT_VERSION if level <= FAST and compressor == ZLIB else RAW_VERSION
    if version == FORMAT_VERSION and compressor == ZLIB:
        parts = [packed(deltas(cols.seq)), packed(deltas(cols.at_us))]
        parts.extend(packed(column) for column in cols.series)
        return _pack(len(cols), parts, level)
    if version != RAW_VERSION:
        raise RuntimeError(f"expected raw chunk version 1 or 2 (v1: zlib only), got {version}, {compressor}")
    return encode_chunk([cols.seq, cols.at_us, *cols.series], _RAW_MISSING, _RAW_ORDERS, level, compressor)


def decode_raw(blob: bytes) -> Columns:
    """``encode_raw``'s input back, from a chunk of either version. Raises ValueError for a damaged chunk."""
    if blob[:1] != bytes((RAW_VERSION,)):
        reader = _Reader(blob)
        try:
            seq = array("q", itertools.accumulate(column_of("q", reader.take(8))))
            at_us = array("q", itertools.accumulate(column_of("q", reader.take(8))))
        except OverflowError as exc:  # damaged deltas that sum past int64
            raise ValueError(f"expected seq and time deltas within int64, got {exc}") from exc
        return Columns(seq, at_us, [column_of(code, reader.take(array(code).itemsize)) for code in TYPECODES])
    seq, at_us, *series = decode_chunk(blob, _RAW_CODES, _RAW_MISSING)
    return Columns(seq, at_us, series)


@dataclass(slots=True)
class Batch:
    """One commit's samples of every node: node and instance columns beside the points, sorted by them."""

    node: array[int]
    inst: array[int]
    cols: Columns

    def node_range(self, node_idx: int) -> tuple[int, int]:
        """The rows of ``node_idx``: [lo, hi)."""
        return bisect.bisect_left(self.node, node_idx), bisect.bisect_right(self.node, node_idx)


def encode_batch(batch: Batch) -> bytes:
    """A head batch as one compressed blob. No deltas: it is decoded whole on every read of recent data."""
    parts = [packed(batch.node), packed(batch.inst), packed(batch.cols.seq), packed(batch.cols.at_us)]
    parts.extend(packed(column) for column in batch.cols.series)
    return _pack(len(batch.node), parts, FAST)


def decode_batch(blob: bytes) -> Batch:
    """``encode_batch``'s input back. Raises ValueError for a damaged blob."""
    reader = _Reader(blob)
    node, inst = column_of("I", reader.take(4)), column_of("I", reader.take(4))
    seq, at_us = column_of("q", reader.take(8)), column_of("q", reader.take(8))
    return Batch(node, inst, Columns(seq, at_us, [column_of(c, reader.take(array(c).itemsize)) for c in TYPECODES]))


def decode_batch_node(blob: bytes, node_idx: int) -> Batch:
    """The rows of ``node_idx`` in a head batch: only the node column is unshuffled whole.

    A history query of one node reads every head batch in its range (each holds every node),
    so it takes the node's rows out of each byte plane instead of rebuilding all columns.
    """
    reader = _Reader(blob)
    node = column_of("I", reader.take(4))
    lo, hi = bisect.bisect_left(node, node_idx), bisect.bisect_right(node, node_idx)
    inst = rows("I", reader.take(4), lo, hi)
    seq, at_us = rows("q", reader.take(8), lo, hi), rows("q", reader.take(8), lo, hi)
    series = [rows(c, reader.take(array(c).itemsize), lo, hi) for c in TYPECODES]
    return Batch(node[lo:hi], inst, Columns(seq, at_us, series))


def decode_batch_seqs(blob: bytes) -> tuple[array[int], array[int]]:
    """A head batch's instance and seq columns only (what the registry's last seq needs at restart)."""
    reader = _Reader(blob)
    reader.take(4)
    return column_of("I", reader.take(4)), column_of("q", reader.take(8))


class _Reader:
    """Walks a decompressed chunk column by column."""

    def __init__(self, blob: bytes) -> None:
        """Raises ValueError for a damaged chunk."""
        if len(blob) < _HEADER.size:
            raise ValueError(f"expected a chunk of at least {_HEADER.size} bytes, got {len(blob)}")
        version, self.n = _HEADER.unpack_from(blob)
        if version != FORMAT_VERSION:
            raise ValueError(f"expected chunk format {FORMAT_VERSION}, got {version}")
        try:
            self._data = zlib.decompress(blob[_HEADER.size :])
        except zlib.error as exc:
            raise ValueError(f"expected a zlib stream in the chunk, got {exc}") from exc
        self._pos = 0

    def take(self, width: int) -> bytes:
        end = self._pos + width * self.n
        if end > len(self._data):
            raise ValueError(f"expected {end} bytes of columns, got {len(self._data)}")
        part, self._pos = self._data[self._pos : end], end
        return part


def _pack(n: int, parts: list[bytes], level: int) -> bytes:
    return _HEADER.pack(FORMAT_VERSION, n) + zlib.compress(b"".join(parts), level)


def _with_sentinels(values: Sequence[StoredValue | None], series: int) -> array[Any]:
    missing = MISSING[series]
    fill = math.nan if missing is None else missing
    return array(TYPECODES[series], [fill if v is None else v for v in values])


def encode_buckets(b: Buckets, level: int = SMALL) -> bytes:
    """Rollup buckets as a compressed chunk: start, then per series count, min, max (stored units), sum."""
    parts = [packed(deltas([round(s) for s in b.start]))]
    for s in range(len(SERIES)):
        parts.append(packed(array("I", b.count[s])))
        parts.append(packed(_with_sentinels(b.min[s], s)))
        parts.append(packed(_with_sentinels(b.max[s], s)))
        parts.append(packed(array("d", b.sum[s])))
    return _pack(len(b.start), parts, level)


def decode_buckets(blob: bytes) -> Buckets:
    """``encode_buckets``'s input back. Raises ValueError for a damaged chunk."""
    reader = _Reader(blob)
    out = Buckets.empty(len(SERIES))
    out.start = [float(s) for s in itertools.accumulate(column_of("q", reader.take(8)))]
    for s, code in enumerate(TYPECODES):
        width = array(code).itemsize
        out.count[s] = list(column_of("I", reader.take(4)))
        out.min[s] = [present(v, s) for v in column_of(code, reader.take(width))]
        out.max[s] = [present(v, s) for v in column_of(code, reader.take(width))]
        out.sum[s] = list(column_of("d", reader.take(8)))
    return out
