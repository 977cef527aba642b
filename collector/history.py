"""A fixed-capacity ring of one node's recent samples, stored as numeric columns.

Each point is nine 8-byte numbers (seq, sampled_at and seven series) in
preallocated ``array`` columns, so a point costs 72 bytes and the ring never
grows past ``capacity`` points: 900 points (15 min at 1 Hz) take 64,800 bytes
of column storage, under 64 KiB including the arrays' own headers. NaN marks
"not measured" and becomes nil on the wire.

Not here: which samples are duplicates (that is ``NodeCache``), and no I/O.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from shared.messages import Heartbeat, History

# The History series, in wire order; each gets one float64 column.
SERIES: tuple[str, ...] = (
    "cpu_percent",
    "mem_percent",
    "load_1",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
)
BYTES_PER_POINT = 8 * (2 + len(SERIES))
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


class HistoryRing:
    """Samples ordered by ``sampled_at``, oldest first; the oldest falls out when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise RuntimeError(f"expected a capacity of at least 1, got {capacity}")
        self.capacity = capacity
        # Multiplying a one-item array allocates exactly `capacity` items; append() would over-allocate.
        self._seq = array("q", [0]) * capacity
        self._at = array("d", [0.0]) * capacity
        self._series = tuple(array("d", [_NAN]) * capacity for _ in SERIES)
        self._start = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def nbytes(self) -> int:
        """Memory held by the columns, headers included (what the 64 KiB bound is about)."""
        return sys.getsizeof(self._seq) + sys.getsizeof(self._at) + sum(sys.getsizeof(c) for c in self._series)

    def newest_at(self) -> float | None:
        """``sampled_at`` of the newest point, or None when empty."""
        return self._at[self._phys(self._len - 1)] if self._len else None

    def add(self, seq: int, sampled_at: float, values: Sequence[float | None]) -> bool:
        """Insert one point in ``sampled_at`` order; False if it is older than everything a full ring keeps."""
        if len(values) != len(SERIES):
            raise RuntimeError(f"expected {len(SERIES)} values, got {len(values)}")
        pos = self._len
        # Replayed samples normally arrive in order: the scan stops at once.
        while pos > 0 and self._at[self._phys(pos - 1)] > sampled_at:
            pos -= 1
        if self._len == self.capacity:
            if pos == 0:
                return False
            self._start = (self._start + 1) % self.capacity
            self._len -= 1
            pos -= 1
        for i in range(self._len, pos, -1):
            self._copy(self._phys(i - 1), self._phys(i))
        self._write(self._phys(pos), seq, sampled_at, values)
        self._len += 1
        return True

    def points(self) -> Iterator[tuple[int, float, tuple[float | None, ...]]]:
        """Yield every point as (seq, sampled_at, values), oldest first; for resizing a ring."""
        for logical in range(self._len):
            i = self._phys(logical)
            values = tuple(None if math.isnan(v) else v for v in (column[i] for column in self._series))
            yield self._seq[i], self._at[i], values

    def to_history(self, last_n: int | None = None) -> History:
        """Return the newest ``last_n`` points (all when None) as a wire ``History``."""
        count = self._len if last_n is None else max(0, min(last_n, self._len))
        idx = [self._phys(i) for i in range(self._len - count, self._len)]
        columns: dict[str, list[float | None]] = {}
        for name, column in zip(SERIES, self._series, strict=True):
            values = [column[i] for i in idx]
            columns[name] = [None if math.isnan(v) else v for v in values]  # NaN marks a gap
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
        count = self._len if last_n is None else max(0, min(last_n, self._len))
        idx = [self._phys(i) for i in range(self._len - count, self._len)]
        result: dict[str, list[Any]] = {"seq": [self._seq[i] for i in idx], "sampled_at": [self._at[i] for i in idx]}
        for name, column in zip(SERIES, self._series, strict=True):
            result[name] = [None if math.isnan(v) else v for v in (column[i] for i in idx)]
        return result

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
        for column, value in zip(self._series, values, strict=True):
            column[i] = _NAN if value is None else value
