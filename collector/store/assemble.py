"""Turning stored points and buckets into a ``RangeResult`` or ``RawPoints``: pure, no SQL.

A point here is ``(seq, sampled_at, v0 .. v6)`` with values in stored units
(``collector.store.codec``). Averages are ``sum / count`` in stored units,
scaled once at the end, so a 1-min average of 10.00 % and 20.00 % is 15.0 exactly.

Not here: fetching (``collector.store.sqlite_engine``), choosing the tier (``collector.store.policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from collector.history import SERIES
from collector.store.codec import SCALES, decode_raw, from_stored
from collector.store.model import RangeResult, RawPoints
from collector.store.policy import Buckets, find_gaps, rollup_points

Point = tuple[Any, ...]


def raw_points(blobs: Iterable[bytes], head_rows: Iterable[Point], from_at: float, to_at: float) -> list[Point]:
    """Points of chunks and head rows inside [from_at, to_at], sorted by time, each seq once."""
    points: dict[int, Point] = {}
    for blob in blobs:
        seq, at, series = decode_raw(blob)
        for point in zip(seq, at, *series, strict=True):
            if from_at <= point[1] <= to_at:
                points[point[0]] = point
    for row in head_rows:
        if from_at <= row[1] <= to_at:
            points[row[0]] = tuple(row)
    return sorted(points.values(), key=lambda p: p[1])


def to_raw_points(instance_id: str, points: Sequence[Point]) -> RawPoints:
    """Sorted points as the columns the cache's history ring is refilled from."""
    return RawPoints(
        instance_id=instance_id,
        seq=[p[0] for p in points],
        sampled_at=[p[1] for p in points],
        series=tuple([from_stored(p[2 + s], s) for p in points] for s in range(len(SERIES))),
    )


def points_buckets(points: Sequence[Point], step_s: float) -> Buckets:
    """Raw points rolled into buckets of ``step_s``."""
    return rollup_points([p[1] for p in points], [[p[2 + s] for p in points] for s in range(len(SERIES))], step_s)


def raw_result(
    node_id: str, points: Sequence[Point], from_at: float, to_at: float, *, step_s: float, interval_s: float
) -> RangeResult:
    """Raw points as they are when ``step_s`` asks no coarser than the node's interval, else bucketed on the fly."""
    if step_s > interval_s:
        return bucket_result(node_id, "raw", points_buckets(points, step_s), from_at, to_at, step_s=step_s)
    at = [p[1] for p in points]
    return RangeResult(
        node_id=node_id,
        tier="raw",
        step_s=interval_s,
        at=at,
        avg={name: [from_stored(p[2 + s], s) for p in points] for s, name in enumerate(SERIES)},
        min=None,
        max=None,
        count=[1] * len(points),
        gaps=find_gaps(at, from_at, to_at, interval_s),
        seq=[p[0] for p in points],
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
    # Bucket starts are step_s apart, the first at most one step before from_at.
    return RangeResult(
        node_id=node_id,
        tier=tier,
        step_s=step_s,
        at=at,
        avg=avg,
        min=lows,
        max=highs,
        count=[samples[i] for i in keep],
        gaps=find_gaps(at, min([from_at, *at[:1]]), to_at, step_s),
    )


def empty_result(node_id: str, tier: str, from_at: float, to_at: float, step_s: float) -> RangeResult:
    """The answer for a node the store has never heard of: one gap over the whole range."""
    return bucket_result(node_id, tier, Buckets.empty(len(SERIES)), from_at, to_at, step_s=step_s)
