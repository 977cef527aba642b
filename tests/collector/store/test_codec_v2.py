"""Raw chunks of version 2: exact for what the ring holds, smaller on real data, and v1 chunks still read."""

from __future__ import annotations

import contextlib
import math
import struct
import zlib
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.store.assemble import merged
from collector.store.codec import (
    FAST,
    FORMAT_VERSION,
    MISSING,
    SMALL,
    TYPECODES,
    Columns,
    decode_raw,
    encode_raw,
    to_stored,
)
from collector.store.codec_v2 import LZMA, RAW_VERSION, packed

T0 = 1_800_000_000.0
INT64 = st.integers(-(2**63), 2**63 - 1)
# Every float32 bit pattern: NaN payloads, inf, -0.0, subnormals, the largest finite values.
FLOAT32 = st.integers(0, 2**32 - 1).map(lambda b: struct.unpack("<f", struct.pack("<I", b))[0])
# A chunk made by the previous encoding (git show 3359490:collector/store/codec.py, encode_raw) of
# five points: seq 7.., times 1 ms later each second, a missing mem, a missing disk read, 3.4e38.
V1_CHUNK = bytes.fromhex(
    "0105000000789c63670402062280061034b801c10c7e20d000098983885410c10657f6c86d155f110b2b2b1bdb8205ff17"
    "2ce0e7ffcfcfcf2069e49d82d5500585190a0c55bfacab185c5c5c5df13be00008d4830090330f247292e1c58b17f52f1c1c1cea1d"
    "00a3b41d55"
)
V1_POINTS = [
    (7, 1800000000.0, 1250, 4000, 0, 0.0, 0.0, None, 7.25),
    (8, 1800000001.001, 1350, 4000, 25, 1000.5, 0.0, None, 7.25),
    (9, 1800000002.002, 1450, None, 50, 2001.0, 0.0, None, 7.25),
    (10, 1800000003.003, 1550, 4000, 75, 3001.5, 0.0, None, 3.3999999521443642e38),
    (11, 1800000004.004, 1650, 4000, 100, 4002.0, 0.0, None, 7.25),
]


def bits(column: array[Any]) -> list[Any]:
    """A column's values, float32 ones as their bit patterns with every NaN as one: what must survive."""
    if column.typecode != "f":
        return list(column)
    return [None if math.isnan(v) else struct.pack("<f", v) for v in column]


def same(a: Columns, b: Columns) -> bool:
    """Bit for bit the same points (a NaN is "not measured", whatever its payload)."""
    return (list(a.seq), list(a.at_us), [bits(c) for c in a.series]) == (
        list(b.seq),
        list(b.at_us),
        [bits(c) for c in b.series],
    )


@st.composite
def any_columns(draw: st.DrawFn, times: st.SearchStrategy[int] = INT64) -> Columns:
    """Columns of any values their arrays can hold, sentinels and NaN included (seq and time from ``times``)."""
    n = draw(st.integers(0, 40))
    series = []
    for code, missing in zip(TYPECODES, MISSING, strict=True):
        if code == "f":
            values = st.one_of(FLOAT32, st.sampled_from([0.0, 0.1, 125.9, 4096.0, math.nan]))
        else:
            top = 2 ** (8 * array(code).itemsize) - 1
            values = st.one_of(st.integers(0, top), st.sampled_from([0, 10, 4000, missing]))
        series.append(array(code, draw(st.lists(values, min_size=n, max_size=n))))
    seq = draw(st.one_of(st.lists(times, min_size=n, max_size=n), st.just(list(range(1, n + 1)))))
    at_us = draw(st.lists(times, min_size=n, max_size=n))
    return Columns(array("q", seq), array("q", at_us), series)


def agent_like(n: int) -> list[tuple[float | None, ...]]:
    """Values at the wire's resolution (``agent/heartbeat.py``: percents to 0.1, load to 0.01, rates to 0.1)."""
    return [
        (round(3 + (i * 7919 % 50) / 10, 1), 41.2, round(0.5 + (i // 5) / 100, 2),
         round(1234.5 + i * 3.3, 1), round(987654.3 + i, 1), 0.0 if i % 5 else 16384.0, None)
        for i in range(n)
    ]  # fmt: skip


def agent_columns(n: int) -> Columns:
    """1-Hz points of ``agent_like`` values, times to the millisecond as the agent sends them."""
    return Columns.of([(i + 1, round(T0 + i + 0.004 * (i % 3), 3), to_stored(v)) for i, v in enumerate(agent_like(n))])


class TestRoundTrip:
    """Whatever a column holds comes back bit for bit from a v2 chunk."""

    @settings(max_examples=300, deadline=None)
    @given(cols=any_columns(), level=st.sampled_from([1, 6, 9]))
    def test_any_columns_round_trip_with_zlib(self, cols: Columns, level: int) -> None:
        """Any seq, time, sentinel, NaN, inf, -0.0 or subnormal survives a v2 chunk exactly."""
        blob = encode_raw(cols, level, version=RAW_VERSION)
        assert blob[0] == RAW_VERSION
        assert same(decode_raw(blob), cols)

    @settings(max_examples=50, deadline=None)
    @given(cols=any_columns())
    def test_any_columns_round_trip_with_lzma(self, cols: Columns) -> None:
        """The lzma variant the bench measures reads back the same points."""
        assert same(decode_raw(encode_raw(cols, 6, compressor=LZMA)), cols)

    @settings(max_examples=100, deadline=None)
    @given(cols=any_columns(st.integers(1 - 2**62, 2**62 - 1)))  # v1: int64 deltas, so |seq|, |time| < 2**62
    def test_v1_chunks_still_round_trip(self, cols: Columns) -> None:
        """A v1 chunk (partials, and every chunk written before v2) reads back exactly too."""
        blob = encode_raw(cols, SMALL, version=FORMAT_VERSION)
        assert blob[0] == FORMAT_VERSION
        assert same(decode_raw(blob), cols)

    def test_wire_values_come_back_exactly_and_pack_smaller_than_v1(self) -> None:
        """An hour of agent-resolution samples reads back as sent (to the ring's widths), in fewer bytes than v1."""
        cols = agent_columns(3600)
        v2, v1 = encode_raw(cols), encode_raw(cols, version=FORMAT_VERSION)
        back = decode_raw(v2)
        assert back.points() == cols.points()
        assert [r[1] for r in back.points()[:3]] == [T0, T0 + 1.004, T0 + 2.008]
        assert len(v2) < 0.8 * len(v1)


class TestVersions:
    """Chunks say their version in their first byte, and every version written is readable."""

    def test_a_chunk_of_the_previous_encoding_reads(self) -> None:
        """A chunk written by the v1 code before this change reads back the same points after it."""
        assert decode_raw(V1_CHUNK).points() == V1_POINTS

    def test_a_v1_partial_and_a_v2_chunk_merge_into_one_series(self) -> None:
        """A read that meets chunks of both versions (an upgrade mid-hour) gets the same columns as from one."""
        cols = agent_columns(20)
        old, new = decode_raw(encode_raw(cols.slice(0, 8), FAST)), decode_raw(encode_raw(cols.slice(8, 20)))
        assert [c.typecode for c in old.series] == [c.typecode for c in new.series] == list(TYPECODES)
        assert merged([new, old], -math.inf, math.inf).points() == cols.points()

    def test_partials_stay_v1_and_consolidated_chunks_are_v2(self) -> None:
        """FAST chunks (partials, read at restart) are v1; SMALL chunks (the raw tier kept for a day) are v2."""
        cols = agent_columns(10)
        assert encode_raw(cols, FAST)[0] == FORMAT_VERSION
        assert encode_raw(cols, SMALL)[0] == RAW_VERSION
        assert encode_raw(cols)[0] == RAW_VERSION

    @pytest.mark.parametrize(
        ("damage", "match"),
        [
            (lambda b: b[:6] + bytes([b[6] ^ 0xFF]) + b[7:], "expected"),  # the compressed stream
            (lambda b: b[:5] + b"\x07" + b[6:], "compressor"),
            (lambda b: b[:1] + (2**23).to_bytes(4, "little") + b[5:], "at most"),
            (lambda b: b[:20], "expected"),
            (lambda b: b[:3], "expected"),
        ],
    )
    def test_a_damaged_v2_chunk_is_a_value_error(self, damage: Any, match: str) -> None:
        """A v2 chunk with a damaged stream, compressor or count raises ValueError, never garbage values."""
        with pytest.raises(ValueError, match=match):
            decode_raw(damage(encode_raw(agent_columns(50))))

    @settings(max_examples=500, deadline=None)
    @given(n=st.integers(0, 70), data=st.binary(max_size=400), compressed=st.booleans())
    def test_arbitrary_bytes_raise_only_value_error(self, n: int, data: bytes, compressed: bool) -> None:
        """A v2 chunk of any bytes, or of any column stream in a valid zlib wrapper, decodes or raises ValueError."""
        body = zlib.compress(data) if compressed else data
        with contextlib.suppress(ValueError):
            decode_raw(bytes([RAW_VERSION]) + n.to_bytes(4, "little") + b"\x00" + body)

    def test_a_v1_chunk_whose_deltas_overflow_is_a_value_error(self) -> None:
        """A damaged v1 chunk whose seq deltas sum past int64 raises ValueError (it raised OverflowError)."""
        columns = [array("q", [2**63 - 1, 1]), array("q", [0, 0]), *(array(code, [0, 0]) for code in TYPECODES)]
        blob = struct.pack("<BI", FORMAT_VERSION, 2) + zlib.compress(b"".join(map(packed, columns)))
        with pytest.raises(ValueError, match="int64"):
            decode_raw(blob)

    @settings(max_examples=500, deadline=None)
    @given(
        version=st.sampled_from([FORMAT_VERSION, RAW_VERSION]),
        n=st.sampled_from([1, 2, 5, 50]),
        edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    )
    def test_a_damaged_column_stream_raises_only_value_error(
        self, version: int, n: int, edits: list[tuple[int, int]]
    ) -> None:
        """Bytes changed inside a valid chunk's columns (behind a valid zlib wrapper) decode or raise ValueError."""
        blob = encode_raw(agent_columns(n), version=version)
        header = 5 if version == FORMAT_VERSION else 6  # v2 adds the compressor byte
        stream = bytearray(zlib.decompress(blob[header:]))
        for at, byte in edits:
            stream[at % len(stream)] = byte
        with contextlib.suppress(ValueError):
            decode_raw(blob[:header] + zlib.compress(bytes(stream)))
