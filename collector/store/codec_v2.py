"""Column bytes for store chunks: byte planes (both chunk versions) and the v2 integer transforms.

Byte planes: a little-endian array's bytes with all first bytes, then all second bytes (blosc's
shuffle), so slowly varying high bytes form runs a compressor packs to almost nothing. The v1
raw chunk, head batches and rollup buckets use them as they are (``collector.store.codec``).

The v2 raw chunk turns every column into small unsigned integers first, each step chosen per
column and per chunk from the data, and recorded in the column's descriptor:

- **decimal**: a float32 rate that is a whole number of tenths (thousandths) once rounded back to
  float32 is kept as that integer: the agent sends rates to 0.1 (``agent/heartbeat.py``), so
  this is lossless for what the ring holds (the check is the decode itself, bit for bit).
  A column that fails it (white noise, -0.0, inf) keeps its float32 bits, byte-shuffled, as v1.
- **missing**: "not measured" (a sentinel, or NaN) leaves the value stream; a 0/1 byte per
  point says where, only in a column that has any.
- **order**: the values, their deltas, or their deltas' deltas (timestamps), whichever has the
  smallest sum of magnitudes; the dropped first values go in the descriptor.
- **gcd**: the values are divided by their greatest common divisor (millisecond timestamps in
  microseconds: 1,000; percents sent to 0.1 kept in hundredths: 10).
- **offset**: less their smallest (frame of reference), so never negative, in the narrowest of
  0, 1, 2, 4 or 8 bytes that holds them all, byte-shuffled. Every step is a C-level ``map``
  (no per-value Python code): this runs in the writer process for every sample.

Pure: arrays in, bytes out. Not here: the chunk header, the compressor (``codec.encode_raw``).
"""

from __future__ import annotations

import itertools
import lzma
import math
import operator
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from typing import Any

RAW_VERSION = 2
_CHUNK = struct.Struct("<BIB")  # 2, point count, compressor
# A chunk holds one node's segment: an hour at the 0.05-s minimum interval is 72,000 points. A
# damaged count above this is refused before a constant column of that many points is built.
MAX_POINTS = 2**22
ZLIB, LZMA = 0, 1  # zlib was chosen (bench/store_codecs.py); lzma is readable, for measuring it
# Descriptor: flags (float bits | order << 1 | mask << 3), width in bytes, decimals, gcd, offset;
# then one int64 per order for the first values the deltas dropped.
_DESC = struct.Struct("<BBBQq")
_HEAD = struct.Struct("<q")
_BITS, _MASKED = 1, 8
# Decimals tried for a float32 column, in order: tenths (what the agent sends; whole numbers pass
# too, and the gcd then takes the factor 10 out), then thousandths (hundredths pass as well).
_DECIMALS = (1, 3)
_INT64 = 2**63
# A decimal column's integers stay below this, so their first deltas fit int64 (a head value).
_DECIMAL_LIMIT = 2**61
_UNSIGNED = {0: "B", 1: "B", 2: "H", 4: "I", 8: "Q"}
assert all(array(code).itemsize == max(1, width) for width, code in _UNSIGNED.items())


def shuffle(data: bytes, width: int) -> bytes:
    """Byte planes of ``width``-byte items: every item's byte 0, then every byte 1, ..."""
    return data if width <= 1 else b"".join(data[i::width] for i in range(width))


def unshuffle(data: bytes, width: int) -> bytes:
    """``shuffle``'s input back."""
    if width <= 1:
        return data
    n = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * n : (i + 1) * n]
    return bytes(out)


def column_of(code: str, data: bytes) -> array[Any]:
    """An array of ``code`` from shuffled little-endian bytes."""
    column = array(code)
    column.frombytes(unshuffle(data, column.itemsize))
    if sys.byteorder != "little":  # pragma: no cover - chunks are little-endian on every host we run on
        column.byteswap()
    return column


def packed(column: array[Any]) -> bytes:
    """A column as shuffled little-endian bytes."""
    if sys.byteorder != "little":  # pragma: no cover
        column = array(column.typecode, column)
        column.byteswap()
    return shuffle(column.tobytes(), column.itemsize)


def deltas(column: Sequence[int]) -> array[int]:
    """First value, then differences: seq steps by 1 and times by about one interval, so they pack to little."""
    return array("q", [b - a for a, b in zip(itertools.chain((0,), column), column, strict=False)])


def rows(code: str, data: bytes, lo: int, hi: int) -> array[Any]:
    """Rows [lo, hi) of one shuffled column: a slice of each byte plane, interleaved."""
    column = array(code)
    width = column.itemsize
    if hi > lo:
        n = len(data) // width
        out = bytearray((hi - lo) * width)
        for i in range(width):
            out[i::width] = data[i * n + lo : i * n + hi]
        column.frombytes(bytes(out))
        if sys.byteorder != "little":  # pragma: no cover
            column.byteswap()
    return column


def quantize_float32(column: array[float], mantissa_bits: int) -> None:
    """Round a float32 column in place to ``mantissa_bits`` of mantissa (lossy; ``codec.quantize_rates``)."""
    drop = 23 - mantissa_bits
    if drop <= 0:
        return
    half, keep = 1 << (drop - 1), ~((1 << drop) - 1) & 0xFFFFFFFF
    bits = array("I")
    bits.frombytes(column.tobytes())
    # Round half up on the magnitude; a carry into the exponent is the correct rounding too.
    rounded = array("I", [b if b & 0x7F800000 == 0x7F800000 else (b + half) & keep for b in bits])
    for i, (before, after) in enumerate(zip(bits, rounded, strict=True)):
        if after & 0x7F800000 == 0x7F800000 and before & 0x7F800000 != 0x7F800000:
            rounded[i] = before & keep  # rounding up the largest finite values would make them inf
    column[:] = array("f", rounded.tobytes())


def _decimal(values: list[float]) -> tuple[int, list[int]] | None:
    """The decimals and integers that give back exactly these float32 values, or None if none do."""
    exact = array("f", values).tobytes()
    for decimals in _DECIMALS:
        scale = 10**decimals
        try:
            ints = list(map(round, map(operator.mul, values, itertools.repeat(scale))))
        except OverflowError:  # inf
            return None
        if array("f", map(operator.truediv, ints, itertools.repeat(scale))).tobytes() == exact:
            if ints and not -_DECIMAL_LIMIT < min(ints) <= max(ints) < _DECIMAL_LIMIT:
                return None
            return decimals, ints
    return None


def _differences(values: list[int]) -> list[int]:
    return list(map(operator.sub, itertools.islice(values, 1, None), values))


def _ordered(values: list[int], orders: range, checked: bool) -> tuple[int, list[int], list[int], int, int]:
    """The order in ``orders`` whose body is smallest once offset by its minimum.

    Returns the order, the first values it dropped, the body and its minimum and maximum.
    ``checked``: the values are small enough that no delta can leave int64 (16- and 32-bit
    columns, decimal rates); otherwise an order whose deltas would is not taken.
    """
    best: tuple[int, list[int], list[int], int, int] | None = None
    cost = 0
    body, heads = values, list[int]()
    for order in range(orders.stop):
        if order:
            if not body:
                break
            heads, body = [*heads, body[0]], _differences(body)
        low, top = (min(body), max(body)) if body else (0, 0)
        if not checked and not -_INT64 <= low <= top < _INT64:
            break  # (the dropped first values are the previous body's, already in range)
        if order in orders:
            c = sum(body) - len(body) * low if len(orders) > 1 else 0
            if best is None or c < cost:
                best, cost = (order, heads, body, low, top), c
    if best is None:  # no order in ``orders`` fits: the values as they are (int64 columns always fit)
        low, top = (min(values), max(values)) if values else (0, 0)
        return 0, [], values, low, top
    return best


def _ints_part(values: list[int], orders: range, checked: bool) -> tuple[int, int, int, int, list[int], bytes]:
    """Order, width, gcd, offset, heads and body bytes of integers (each fits int64).

    The body is stored as ``value // gcd - offset`` (frame of reference: the offset is the smallest),
    which is never negative, in the narrowest unsigned width; a body of equal values takes no bytes.
    """
    order, heads, body, low, top = _ordered(values, orders, checked)
    divisor = math.gcd(*body) if top != low else 0
    if divisor > 1:
        body = list(map(operator.floordiv, body, itertools.repeat(divisor)))
        low, top = low // divisor, top // divisor
    span = top - low
    width = 0 if span == 0 else 1 if span < 2**8 else 2 if span < 2**16 else 4 if span < 2**32 else 8
    data = b"" if width == 0 else packed(array(_UNSIGNED[width], map(operator.sub, body, itertools.repeat(low))))
    return order, width, max(divisor, 1), low, heads, data


def encode_column(column: array[Any], missing: int | None, orders: range = range(2)) -> bytes:
    """One column (ints with sentinel ``missing``, or float32 with NaN as missing) as a v2 column part.

    ``orders``: the delta orders to choose from (timestamps: 1 and 2; gauges: 0 and 1).
    """
    is_float = column.typecode == "f"
    if is_float:
        mask = list(map(math.isnan, column)) if any(map(math.isnan, column)) else None
    else:
        mask = [v == missing for v in column] if missing is not None and missing in column else None
    values = list(column) if mask is None else list(itertools.compress(column, map(operator.not_, mask)))
    mask_bytes = b"" if mask is None else bytes(mask)
    flags = 0 if mask is None else _MASKED
    decimals = 0
    if is_float:
        found = _decimal(values)
        if found is None:
            floats = packed(array("f", values))
            return _DESC.pack(flags | _BITS, 4, 0, 1, 0) + mask_bytes + floats
        decimals, values = found
    order, width, divisor, offset, heads, data = _ints_part(values, orders, is_float or column.itemsize <= 4)
    head_bytes = b"".join(_HEAD.pack(h) for h in heads)
    return _DESC.pack(flags | order << 1, width, decimals, divisor, offset) + head_bytes + mask_bytes + data


class _Walk:
    """A cursor over the decompressed v2 stream."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ValueError(f"expected {end} bytes of v2 columns, got {len(self.data)}")
        part, self.pos = self.data[self.pos : end], end
        return part


def decode_column(walk: _Walk, n: int, code: str, missing: int | None) -> array[Any]:
    """``encode_column``'s column of ``n`` points back, as an array of ``code``."""
    flags, width, decimals, divisor, offset = _DESC.unpack(walk.take(_DESC.size))
    order = flags >> 1 & 3
    as_float = bool(flags & _BITS or decimals)  # only a float32 column has float bits or decimals
    if flags & ~(_BITS | _MASKED | 6) or order > 2 or width not in _UNSIGNED or decimals > _DECIMALS[-1]:
        raise ValueError(f"expected a v2 column descriptor, got flags {flags} width {width} decimals {decimals}")
    if as_float and code != "f":
        raise ValueError(f"expected an integer column of {code!r}, got float bits or decimals")
    if flags & _MASKED and code != "f" and missing is None:
        raise ValueError(f"expected no mask in a column of {code!r} without a sentinel, got one")
    heads = [_HEAD.unpack(walk.take(_HEAD.size))[0] for _ in range(0 if flags & _BITS else order)]
    mask = walk.take(n) if flags & _MASKED else None
    count = n if mask is None else mask.count(0)
    if mask is not None and count + mask.count(1) != n:
        raise ValueError("expected a mask of 0 and 1 bytes, got other bytes")
    if flags & _BITS:
        values: Sequence[Any] = column_of("f", walk.take(4 * count))
    else:
        body_n = count - order
        if body_n < 0:
            raise ValueError(f"expected at least {order} values in a column of order {order}, got {count}")
        stored = column_of(_UNSIGNED[width], walk.take(width * body_n)) if width else [0] * body_n
        ints: Sequence[int] = list(map(operator.add, stored, itertools.repeat(offset)))
        if divisor > 1:
            ints = list(map(operator.mul, ints, itertools.repeat(divisor)))
        for head in reversed(heads):
            ints = list(itertools.accumulate(ints, initial=head))
        values = ints
        if decimals:
            values = list(map(operator.truediv, ints, itertools.repeat(10**decimals)))
    if mask is None:
        return array(code, values)
    fill = math.nan if missing is None else missing
    it = iter(values)
    return array(code, [fill if m else next(it) for m in mask])


def encode_columns(columns: Sequence[array[Any]], missing: Sequence[int | None], orders: Sequence[range]) -> bytes:
    """Every column's part, concatenated (the v2 chunk's stream before compression)."""
    return b"".join(encode_column(c, m, o) for c, m, o in zip(columns, missing, orders, strict=True))


def decode_columns(data: bytes, n: int, codes: Sequence[str], missing: Sequence[int | None]) -> list[array[Any]]:
    """``encode_columns``'s columns of ``n`` points back. Raises ValueError for a damaged stream."""
    walk = _Walk(data)
    try:
        out = [decode_column(walk, n, code, m) for code, m in zip(codes, missing, strict=True)]
    except (OverflowError, StopIteration, struct.error) as exc:  # values out of the column's range
        raise ValueError(f"expected v2 columns that fit their types, got {exc}") from exc
    if walk.pos != len(data):
        raise ValueError(f"expected {walk.pos} bytes of v2 columns, got {len(data)}")
    return out


def encode_chunk(
    columns: Sequence[array[Any]], missing: Sequence[int | None], orders: Sequence[range], level: int, compressor: int
) -> bytes:
    """A v2 chunk: header (version 2, point count, compressor), then the compressed columns."""
    stream = encode_columns(columns, missing, orders)
    if compressor == ZLIB:
        body = zlib.compress(stream, level)
    elif compressor == LZMA:
        body = lzma.compress(stream, preset=level)
    else:
        raise RuntimeError(f"expected compressor {ZLIB} (zlib) or {LZMA} (lzma), got {compressor}")
    return _CHUNK.pack(RAW_VERSION, len(columns[0]), compressor) + body


def decode_chunk(blob: bytes, codes: Sequence[str], missing: Sequence[int | None]) -> list[array[Any]]:
    """``encode_chunk``'s columns back. Raises ValueError for a damaged chunk."""
    if len(blob) < _CHUNK.size:
        raise ValueError(f"expected a v2 chunk of at least {_CHUNK.size} bytes, got {len(blob)}")
    version, n, compressor = _CHUNK.unpack_from(blob)
    if n > MAX_POINTS:
        raise ValueError(f"expected at most {MAX_POINTS} points in a chunk, got {n}")
    if version != RAW_VERSION or compressor not in (ZLIB, LZMA):
        raise ValueError(f"expected a v2 chunk (2, compressor 0 or 1), got version {version}, compressor {compressor}")
    try:
        decompress = zlib.decompress if compressor == ZLIB else lzma.decompress
        stream = decompress(blob[_CHUNK.size :])
    except (zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"expected a compressed stream in the chunk, got {exc}") from exc
    return decode_columns(stream, n, codes, missing)
