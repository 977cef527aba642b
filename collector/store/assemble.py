"""Turning stored columns and buckets into a ``RangeResult`` or ``RawPoints``: pure, no SQL.

Averages are ``sum / count`` in stored units, scaled once at the end, so a 1-min
average of 10.00 % and 20.00 % is 15.0 exactly. ``rollup_columns`` is
``policy.rollup_points`` for columns sorted by time, with the per-bucket work on
array slices (min, max and sum run in C); a test keeps the two equal.

Not here: fetching (``collector.store.sqlite_reader``), choosing the tier (``collector.store.policy``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Iterable

from collector.history import SERIES
from collector.store.codec import MISSING, SCALES, Columns, from_stored, values_of
from collector.store.model import RangeResult, RawPoints
from collector.store.policy import Buckets, find_gaps


def merged(parts: Iterable[Columns], from_at: float, to_at: float) -> Columns:
    """The points of ``parts`` inside [from_at, to_at], sorted by time, each (seq, time) once."""
    lo_us = math.ceil(from_at * 1e6) if math.isfinite(from_at) else -(2**63)
    hi_us = math.floor(to_at * 1e6) if math.isfinite(to_at) else 2**63 - 1
    pieces = sorted((p for p in parts if len(p)), key=lambda p: p.at_us[0])
    everything = Columns.empty()
    for part in pieces:
        everything.extend(part)
    times = everything.at_us
    # The usual case (restart, queries): chunks and head runs that follow each other in time.
    # Then the range is two bisections and the copy is in C; the general case dedups point by point.
    if all(a.at_us[-1] < b.at_us[0] for a, b in itertools.pairwise(pieces)) and all(
        all(map(operator.lt, p.at_us[:-1], p.at_us[1:])) for p in pieces
    ):
        return everything.slice(bisect.bisect_left(times, lo_us), bisect.bisect_right(times, hi_us))
    seen: dict[tuple[int, int], int] = {}
    for i, (seq, at_us) in enumerate(zip(everything.seq, times, strict=True)):
        if lo_us <= at_us <= hi_us:
            seen[seq, at_us] = i
    order = sorted(seen.values(), key=everything.at_us.__getitem__)
    return everything.take(order)


def rollup_columns(cols: Columns, step_s: float) -> Buckets:
    """Buckets of ``step_s`` over points sorted by time; the same numbers as ``policy.rollup_points``."""
    out = Buckets.empty(len(SERIES))
    isnan = math.isnan
    step_us = round(step_s * 1e6)
    at_us, n, i = cols.at_us, len(cols), 0
    while i < n:
        start_us = at_us[i] // step_us * step_us
        j = bisect.bisect_left(at_us, start_us + step_us, i)
        out.start.append(start_us / 1e6)
        for s, column in enumerate(cols.series):
            missing = MISSING[s]
            part = column[i:j]
            values = [v for v in part if not isnan(v)] if missing is None else [v for v in part if v != missing]
            out.count[s].append(len(values))
            out.min[s].append(min(values) if values else None)
            out.max[s].append(max(values) if values else None)
            out.sum[s].append(float(sum(values)))
        i = j
    return out


def to_raw_points(instance_id: str, cols: Columns) -> RawPoints:
    """Sorted columns as what the cache's history ring is refilled from."""
    return RawPoints(instance_id, cols)


def raw_result(
    node_id: str, cols: Columns, from_at: float, to_at: float, *, step_s: float, interval_s: float
) -> RangeResult:
    """Raw points as they are when ``step_s`` asks no coarser than the node's interval, else bucketed on the fly."""
    if step_s > interval_s:
        return bucket_result(node_id, "raw", rollup_columns(cols, step_s), from_at, to_at, step_s=step_s)
    at = [us / 1e6 for us in cols.at_us]
    return RangeResult(
        node_id=node_id,
        tier="raw",
        step_s=interval_s,
        at=at,
        avg={name: values_of(cols.series[s], s) for s, name in enumerate(SERIES)},
        min=None,
        max=None,
        count=[1] * len(at),
        gaps=find_gaps(at, from_at, to_at, interval_s),
        seq=list(cols.seq),
    )


def bucket_result(
    node_id: str, tier: str, buckets: Buckets, from_at: float, to_at: float, *, step_s: float
) -> RangeResult:
    """Buckets inside the range as min/avg/max per series; a bucket without samples is a gap, not a zero."""
    keep = [i for i, start in enumerate(buckets.start) if start + step_s > from_at and start <= to_at]
    avg: dict[str, list[float | None]] = {}
    lows: dict[str, list[float | None]] = {}
    highs: dict[str, list[float | None]] = {}
    for s, name in enumerate(SERIES):
        counts, sums = buckets.count[s], buckets.sum[s]
        avg[name] = [sums[i] / counts[i] / SCALES[s] if counts[i] else None for i in keep]
        lows[name] = [from_stored(buckets.min[s][i], s) for i in keep]
        highs[name] = [from_stored(buckets.max[s][i], s) for i in keep]
    at = [buckets.start[i] for i in keep]
    samples = buckets.samples()
    return RangeResult(
        node_id=node_id,
        tier=tier,
        step_s=step_s,
        at=at,
        avg=avg,
        min=lows,
        max=highs,
        count=[samples[i] for i in keep],
        # Bucket starts are step_s apart, the first up to one step before from_at.
        gaps=find_gaps(at, min([from_at, *at[:1]]), to_at, step_s),
    )


def empty_result(node_id: str, tier: str, from_at: float, to_at: float, step_s: float) -> RangeResult:
    """The answer for a node the store has never heard of: one gap over the whole range."""
    return bucket_result(node_id, tier, Buckets.empty(len(SERIES)), from_at, to_at, step_s=step_s)
