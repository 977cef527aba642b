"""Columnar chunk encoding for the store: raw points and rollup buckets to compact bytes and back.

A chunk is one node's points as columns, in the widths of ``collector.history``
(percents and load as integer hundredths, rates as float32, "not measured" as the
all-ones integer or NaN). Integer columns are delta-encoded (seq steps by 1, times
by about one interval), every column is byte-shuffled (all first bytes, then all
second bytes, as blosc does), and the whole is one zlib stream: after shuffling,
the slowly varying high bytes form long runs zlib packs to almost nothing.
Chosen by measurement (bench/store_size.py): shuffling alone halves the size of
plain zlib on 1-Hz data.

Times are kept in whole microseconds (an epoch float64 resolves ~0.24 us, so a
time read back differs from the original by at most 0.5 us).

Pure: bytes in, columns out. Not here: SQL, rollup maths (``collector.store.policy``).
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence

from collector.history import FLOAT32_MAX, LOAD_MAX, PERCENT_MAX, SERIES
from collector.store.policy import Buckets, StoredValue

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
# zlib level 6 (its default): levels 7-9 gained under 2 % on 1-Hz data and cost twice the CPU.
_ZLIB_LEVEL = 6
assert len(TYPECODES) == len(SERIES)


def to_stored(values: Sequence[float | None]) -> tuple[StoredValue | None, ...]:
    """A sample's values in stored units, clamped as ``collector.history`` clamps; None stays None."""
    out: list[StoredValue | None] = []
    for value, scale, top in zip(values, SCALES, _MAXES, strict=True):
        if value is None or math.isnan(value):
            out.append(None)
        elif scale == 1:
            # Rounded to float32 here, so head rows and chunks hold the very same numbers.
            out.append(_F32.unpack(_F32.pack(max(-top, min(top, value))))[0])
        else:
            out.append(round(max(0.0, min(top, value)) * scale))
    return tuple(out)


def from_stored(value: StoredValue | None, series: int) -> float | None:
    """A stored value back in its unit: n / 100 is the float nearest the two-decimal number."""
    if value is None:
        return None
    return value / 100 if SCALES[series] == 100 else float(value)


def _shuffle(data: bytes, width: int) -> bytes:
    return data if width == 1 else b"".join(data[i::width] for i in range(width))


def _unshuffle(data: bytes, width: int) -> bytes:
    if width == 1:
        return data
    n = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * n : (i + 1) * n]
    return bytes(out)


def _delta(values: Sequence[int], typecode: str) -> array[int]:
    """Differences from the previous value, wrapping in the column's width so they stay unsigned."""
    mask = 2 ** (8 * array(typecode).itemsize) - 1
    signed = typecode.islower()
    out = array(typecode)
    previous = 0
    for v in values:
        d = (v - previous) & mask
        out.append(d - mask - 1 if signed and d > mask >> 1 else d)
        previous = v
    return out


def _undelta(column: array[int], typecode: str) -> list[int]:
    mask = 2 ** (8 * array(typecode).itemsize) - 1
    signed = typecode.islower()
    out = []
    total = 0
    for d in column:
        total = (total + d) & mask
        out.append(total - mask - 1 if signed and total > mask >> 1 else total)
    return out


def _column_bytes(values: Sequence[StoredValue | None], series: int) -> bytes:
    code, missing = TYPECODES[series], MISSING[series]
    if missing is None:
        return _shuffle(array(code, [math.nan if v is None else v for v in values]).tobytes(), 4)
    ints = [missing if v is None else int(v) for v in values]
    return _shuffle(_delta(ints, code).tobytes(), array(code).itemsize)


def _read_column(raw: bytes, series: int, n: int) -> list[StoredValue | None]:
    code, missing = TYPECODES[series], MISSING[series]
    column = array(code)
    column.frombytes(_unshuffle(raw, column.itemsize))
    if sys.byteorder != "little":  # pragma: no cover - chunks are little-endian on every host
        column.byteswap()
    if missing is None:
        return [None if math.isnan(v) else v for v in column]
    return [None if v == missing else v for v in _undelta(column, code)]


class _Reader:
    """Walks a decompressed chunk column by column."""

    def __init__(self, blob: bytes) -> None:
        """Raises ValueError for a damaged chunk."""
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

    def ints(self, typecode: str) -> list[int]:
        column = array(typecode)
        column.frombytes(_unshuffle(self.take(column.itemsize), column.itemsize))
        return _undelta(column, typecode)

    def floats(self, typecode: str) -> list[float]:
        column = array(typecode)
        column.frombytes(_unshuffle(self.take(column.itemsize), column.itemsize))
        return list(column)

    def series(self, series: int) -> list[StoredValue | None]:
        return _read_column(self.take(array(TYPECODES[series]).itemsize), series, self.n)


def _pack(n: int, parts: list[bytes]) -> bytes:
    return _HEADER.pack(FORMAT_VERSION, n) + zlib.compress(b"".join(parts), _ZLIB_LEVEL)


def _int_column(values: Sequence[int], typecode: str) -> bytes:
    return _shuffle(_delta(values, typecode).tobytes(), array(typecode).itemsize)


def encode_raw(seq: Sequence[int], at: Sequence[float], series: Sequence[Sequence[StoredValue | None]]) -> bytes:
    """One node's raw points (stored units, see ``to_stored``) as a compressed chunk."""
    at_us = [round(t * 1e6) for t in at]
    parts = [_int_column(seq, "q"), _int_column(at_us, "q")]
    parts.extend(_column_bytes(column, s) for s, column in enumerate(series))
    return _pack(len(seq), parts)


def decode_raw(blob: bytes) -> tuple[list[int], list[float], list[list[StoredValue | None]]]:
    """``encode_raw``'s input back: seq, sampled_at, and each series in stored units."""
    reader = _Reader(blob)
    seq = reader.ints("q")
    at = [us / 1e6 for us in reader.ints("q")]
    return seq, at, [reader.series(s) for s in range(len(SERIES))]


def encode_buckets(b: Buckets) -> bytes:
    """Rollup buckets as a compressed chunk: start, then per series count, min, max (stored units), sum."""
    parts = [_int_column([round(s) for s in b.start], "q")]
    for s in range(len(SERIES)):
        parts.append(_int_column(b.count[s], "I"))
        parts.append(_column_bytes(b.min[s], s))
        parts.append(_column_bytes(b.max[s], s))
        parts.append(_shuffle(array("d", b.sum[s]).tobytes(), 8))
    return _pack(len(b.start), parts)


def decode_buckets(blob: bytes) -> Buckets:
    """``encode_buckets``'s input back."""
    reader = _Reader(blob)
    out = Buckets.empty(len(SERIES))
    out.start = [float(s) for s in reader.ints("q")]
    for s in range(len(SERIES)):
        out.count[s] = reader.ints("I")
        out.min[s] = reader.series(s)
        out.max[s] = reader.series(s)
        out.sum[s] = reader.floats("d")
    return out
