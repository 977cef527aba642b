"""A fixed-capacity ring of one node's recent samples, stored as narrow numeric columns.

Each point is stored in preallocated ``array`` columns at the narrowest width
that keeps what a viewer can see: seq (int64) and sampled_at (float64) exact,
cpu_percent and mem_percent as uint16 hundredths, load_1 as uint32 hundredths,
and the four byte rates as float32 (about 7 significant digits; whole numbers
below 2**24 are exact). A point costs 40 bytes and the ring never grows past
``capacity`` points: 900 points (15 min at 1 Hz) take 36,000 bytes of column
storage, under 40 KiB including the arrays' own headers.

Values come back as plain floats: percents and load rounded to 0.01 (so a value
with at most two decimals comes back exactly), rates as the nearest float32.
"Not measured" is a sentinel (the all-ones integer, or NaN for float32) and
becomes nil on the wire. A value outside what a column can hold is clamped to
the nearest value it can (a negative percent to 0, an absurd load to the
largest), never wrapped and never turned into a gap.

Not here: which samples are duplicates (that is ``NodeCache``), and no I/O.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from shared.messages import Heartbeat, History

# The History series, in wire order.
SERIES: tuple[str, ...] = (
    "cpu_percent",
    "mem_percent",
    "load_1",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
)
# "Not measured" is the all-ones integer in a hundredths column, NaN in a float32 one.
_PERCENT_MISSING = 2 ** (8 * array("H").itemsize) - 1
_LOAD_MISSING = 2 ** (8 * array("I").itemsize) - 1
# Storage per series, in SERIES order: "H"/"I" hold hundredths, "f" holds the value as float32.
_TYPECODES: tuple[str, ...] = ("H", "H", "I", "f", "f", "f", "f")
_MISSING: tuple[int | None, ...] = (_PERCENT_MISSING, _PERCENT_MISSING, _LOAD_MISSING, None, None, None, None)
BYTES_PER_POINT = array("q").itemsize + array("d").itemsize + sum(array(code).itemsize for code in _TYPECODES)
# The largest value each kind of column holds; larger ones are clamped to it.
PERCENT_MAX = (_PERCENT_MISSING - 1) / 100
LOAD_MAX = (_LOAD_MISSING - 1) / 100
FLOAT32_MAX = 3.4028234663852886e38
_NAN = math.nan


def point_values(heartbeat: Heartbeat) -> tuple[float | None, ...]:
    """Return the heartbeat's value for each of ``SERIES``, None where it was not measured."""
    load = heartbeat.load_avg
    return (
        heartbeat.cpu_percent,
        heartbeat.mem_percent,
        load[0] if load is not None else None,
        heartbeat.net_rx_bytes_per_s,
        heartbeat.net_tx_bytes_per_s,
        heartbeat.disk_read_bytes_per_s,
        heartbeat.disk_write_bytes_per_s,
    )


def _to_stored(value: float | None, missing: int | None) -> float | int:
    """``value`` as its column holds it: hundredths clamped below ``missing``, or a float32-range float."""
    if value is None:
        return _NAN if missing is None else missing
    if missing is None:
        if -FLOAT32_MAX <= value <= FLOAT32_MAX:
            return value
        # array("f") would turn a larger magnitude into inf, which the History model refuses.
        return _NAN if math.isnan(value) else math.copysign(FLOAT32_MAX, value)
    scaled = value * 100.0
    if 0.0 < scaled < missing - 1:
        return round(scaled)
    if math.isnan(scaled):
        return missing
    return 0 if scaled <= 0.0 else missing - 1


def _decode(column: array[Any], missing: int | None, idx: Sequence[int]) -> list[float | None]:
    """Column entries ``idx`` as wire values: floats, None for a gap."""
    if missing is None:
        return [None if math.isnan(v) else v for v in (column[i] for i in idx)]
    # n / 100 is the float nearest to the two-decimal number, so 3620 reads back as exactly 36.2.
    return [None if v == missing else v / 100 for v in (column[i] for i in idx)]


class HistoryRing:
    """Samples in arrival order, oldest first; the oldest falls out when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise RuntimeError(f"expected a capacity of at least 1, got {capacity}")
        self.capacity = capacity
        # Multiplying a one-item array allocates exactly `capacity` items; append() would over-allocate.
        self._seq = array("q", [0]) * capacity
        self._at = array("d", [0.0]) * capacity
        self._series = tuple(
            array(code, [_to_stored(None, missing)]) * capacity
            for code, missing in zip(_TYPECODES, _MISSING, strict=True)
        )
        self._start = 0
        self._len = 0
        # The newest ``_run`` points are one count of seqs (one agent instance's), strictly increasing:
        # what a replayed seq is looked up in. An older count may restart at 1 (a take-over).
        self._run = 0
        self._newest = 0  # the newest point's seq, kept apart so add() need not index the ring

    def __len__(self) -> int:
        return self._len

    def nbytes(self) -> int:
        """Memory held by the columns, headers included (what the per-node memory bound is about)."""
        return sys.getsizeof(self._seq) + sys.getsizeof(self._at) + sum(sys.getsizeof(c) for c in self._series)

    def add(self, seq: int, sampled_at: float, values: Sequence[float | None]) -> bool:
        """Append one point (arrival order), the oldest falling out of a full ring; False if ``seq`` is held already.

        A held seq is a replay: a sample the store refused comes again after ``NodeCache.rewind``, and the
        ring keeps the copy it has. Only a seq at or below the newest pays for the look-up (a binary search).
        """
        if len(values) != len(SERIES):
            raise RuntimeError(f"expected {len(SERIES)} values, got {len(values)}")
        run = self._run
        if run and seq <= self._newest:
            if self._holds(seq, run):
                return False
            run = 0  # below the newest and not held: a new count of seqs begins
        # Appended in arrival order (the cache adds only seqs above the node's last), never sorted by
        # the agent's sampled_at: a crafted stamp order made each insert O(n) (issue 13, finding 5b).
        if self._len == self.capacity:
            self._start = (self._start + 1) % self.capacity
            self._len -= 1
        self._write(self._phys(self._len), seq, sampled_at, values)
        self._len += 1
        self._run = min(run + 1, self._len)
        self._newest = seq
        return True

    def new_run(self) -> None:
        """The next point starts a new count of seqs (another agent instance): no earlier point is a copy of it."""
        self._run = 0

    def resized(self, capacity: int) -> HistoryRing:
        """The newest ``capacity`` points in a ring of that size, copied as stored (nothing is rounded again)."""
        ring = HistoryRing(capacity)
        idx = self._indices(capacity)
        n = len(idx)
        ring._seq[:n] = array("q", [self._seq[i] for i in idx])
        ring._at[:n] = array("d", [self._at[i] for i in idx])
        for target, column in zip(ring._series, self._series, strict=True):
            target[:n] = array(column.typecode, [column[i] for i in idx])
        ring._len, ring._run, ring._newest = n, min(self._run, n), self._newest
        return ring

    def _holds(self, seq: int, run: int) -> bool:
        """Whether the newest ``run`` points (strictly increasing seqs) hold ``seq``: a binary search."""
        lo, hi = self._len - run, self._len
        while lo < hi:
            mid = (lo + hi) // 2
            held = self._seq[self._phys(mid)]
            if held == seq:
                return True
            if held < seq:
                lo = mid + 1
            else:
                hi = mid
        return False

    def load(self, seq: Sequence[int], sampled_at: Sequence[float], series: Sequence[array[Any]]) -> None:
        """Replace the contents with the newest ``capacity`` of these time-sorted points, in this ring's own widths.

        ``series`` are columns of the ring's typecodes and sentinels (``collector.store.codec.Columns``):
        a slice assignment each, so refilling 10,000 rings at restart costs no per-point Python.
        """
        n = min(len(seq), self.capacity)
        lo = len(seq) - n
        self._seq[:n] = array("q", seq[lo:])
        self._at[:n] = array("d", sampled_at[lo:])
        for column, source in zip(self._series, series, strict=True):
            column[:n] = source[lo:]
        self._start = 0
        self._len = n
        seqs = self._seq
        if all(map(operator.lt, seqs[: n - 1], seqs[1:n])):  # one instance's points, the usual case: in C
            run = n
        else:
            run = min(n, 1)
            while run < n and seqs[n - run - 1] < seqs[n - run]:
                run += 1
        self._run = run
        self._newest = self._seq[n - 1] if n else 0

    def points(self) -> Iterator[tuple[int, float, tuple[float | None, ...]]]:
        """Yield every point as (seq, sampled_at, values), oldest first; for resizing a ring.

        Adding these values to another ring stores the same numbers again: a resize loses nothing more.
        """
        idx = self._indices(None)
        columns = [_decode(column, missing, idx) for column, missing in zip(self._series, _MISSING, strict=True)]
        for k, i in enumerate(idx):
            yield self._seq[i], self._at[i], tuple(column[k] for column in columns)

    def to_history(self, last_n: int | None = None) -> History:
        """Return the newest ``last_n`` points (all when None) as a wire ``History``."""
        idx = self._indices(last_n)
        columns = {
            name: _decode(column, missing, idx)
            for name, column, missing in zip(SERIES, self._series, _MISSING, strict=True)
        }
        return History(
            seq=[self._seq[i] for i in idx],
            sampled_at=[self._at[i] for i in idx],
            cpu_percent=columns["cpu_percent"],
            mem_percent=columns["mem_percent"],
            load_1=columns["load_1"],
            net_rx_bytes_per_s=columns["net_rx_bytes_per_s"],
            net_tx_bytes_per_s=columns["net_tx_bytes_per_s"],
            disk_read_bytes_per_s=columns["disk_read_bytes_per_s"],
            disk_write_bytes_per_s=columns["disk_write_bytes_per_s"],
        )

    def to_wire(self, last_n: int | None = None) -> dict[str, list[Any]]:
        """``to_history(last_n)`` as the map ``encode`` would pack, without building the model."""
        idx = self._indices(last_n)
        result: dict[str, list[Any]] = {"seq": [self._seq[i] for i in idx], "sampled_at": [self._at[i] for i in idx]}
        for name, column, missing in zip(SERIES, self._series, _MISSING, strict=True):
            result[name] = _decode(column, missing, idx)
        return result

    def _indices(self, last_n: int | None) -> list[int]:
        count = self._len if last_n is None else max(0, min(last_n, self._len))
        return [self._phys(i) for i in range(self._len - count, self._len)]

    def _phys(self, logical: int) -> int:
        return (self._start + logical) % self.capacity

    def _copy(self, src: int, dst: int) -> None:
        self._seq[dst] = self._seq[src]
        self._at[dst] = self._at[src]
        for column in self._series:
            column[dst] = column[src]

    def _write(self, i: int, seq: int, sampled_at: float, values: Sequence[float | None]) -> None:
        self._seq[i] = seq
        self._at[i] = sampled_at
        cpu, mem, load, rx, tx, read, write = self._series
        c, m, ld, r, t, dr, dw = values
        # A present, in-range value is stored without calling _to_stored: add() runs on every heartbeat.
        cpu[i] = round(c * 100.0) if c is not None and 0.0 <= c <= PERCENT_MAX else _to_stored(c, _PERCENT_MISSING)
        mem[i] = round(m * 100.0) if m is not None and 0.0 <= m <= PERCENT_MAX else _to_stored(m, _PERCENT_MISSING)
        load[i] = round(ld * 100.0) if ld is not None and 0.0 <= ld <= LOAD_MAX else _to_stored(ld, _LOAD_MISSING)
        rx[i] = r if r is not None and -FLOAT32_MAX <= r <= FLOAT32_MAX else _to_stored(r, None)
        tx[i] = t if t is not None and -FLOAT32_MAX <= t <= FLOAT32_MAX else _to_stored(t, None)
        read[i] = dr if dr is not None and -FLOAT32_MAX <= dr <= FLOAT32_MAX else _to_stored(dr, None)
        write[i] = dw if dw is not None and -FLOAT32_MAX <= dw <= FLOAT32_MAX else _to_stored(dw, None)
