"""Retention tiers, time chunks, rollup maths, tier choice and gap marking: pure functions, time passed in.

Data is kept in tiers. Each tier's points live in chunks (partitions) of
``chunk_s`` seconds, aligned to the epoch; a chunk leaves whole, once all of it
is older than the tier's ``keep_s``, never row by row (Prometheus's blocks, tsdb/db.go).
Tier 0 is raw; each later tier holds min/sum/max/count buckets of ``step_s``.
Rollups are incremental: every batch of raw points compacted adds partial buckets
to every tier at once, and partial buckets merge exactly, so a late sample only
adds one more partial, and nothing is ever recomputed.

Rollup maths runs on stored units (hundredths as integers for percents and load,
float32 values for rates), so sums are exact integers where the inputs are, and
merging buckets (1-min into 1-h) gives the same numbers as rolling the raw points
directly: min, max, sum and count are all associative.

Not here: encoding (``collector.store.codec``), SQL, threads, acks (``collector.store.durability``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# A stretch with no point longer than this many expected spacings is a gap: one missed
# 1-Hz sample (2 s between points) is already one, while normal tick jitter (a few ms) is not.
GAP_FACTOR = 1.5
# A range query returns at most about this many points per series before a coarser tier is
# preferred: a chart is ~2,000 px wide, and the wire's MAX_HISTORY_POINTS is larger.
MAX_POINTS = 2_000

StoredValue = int | float


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution: ``step_s`` 0 means raw points; kept ``keep_s``, dropped by chunks of ``chunk_s``.

    A segment (``segment_s``, dividing ``chunk_s``) is what one stored row covers once consolidated:
    compaction writes partial rows as samples come, and once a segment has closed its partial rows
    are merged into one (fewer rows, better compression).
    """

    name: str
    step_s: float
    keep_s: float
    chunk_s: float
    segment_s: float

    def segment_start(self, at: float) -> float:
        """The start of the segment holding time ``at``."""
        return math.floor(at / self.segment_s) * self.segment_s

    def chunk_start(self, at: float) -> float:
        """The start of the chunk holding time ``at``."""
        return math.floor(at / self.chunk_s) * self.chunk_s

    def drop_before(self, now_at: float) -> float:
        """Chunks starting before this time lie wholly outside retention and may be dropped."""
        return self.chunk_start(now_at - self.keep_s) if self.keep_s > 0 else -math.inf

    def expired(self, chunk_starts: Sequence[float], now_at: float) -> list[float]:
        """Which of ``chunk_starts`` have ended more than ``keep_s`` ago."""
        cutoff = now_at - self.keep_s
        return [start for start in chunk_starts if start + self.chunk_s <= cutoff]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The tiers, finest first, plus when a chunk counts as closed and may be rolled up."""

    tiers: tuple[Tier, ...] = (
        Tier("raw", 0.0, 24 * 3600.0, 3600.0, 3600.0),
        Tier("1m", 60.0, 30 * 86400.0, 86400.0, 3600.0),
        Tier("1h", 3600.0, 400 * 86400.0, 30 * 86400.0, 86400.0),
    )
    # A segment is consolidated this long after it ends, so samples still in flight have reached
    # it first: a sample waits up to two head windows (2 x 120 s) plus one maintenance interval
    # (60 s) before compaction. Later ones (replayed backlogs) add a partial row: still exact.
    close_grace_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[0].step_s != 0.0:
            raise RuntimeError("expected the first tier to be raw (step_s 0)")
        for tier in self.tiers:
            if tier.chunk_s % tier.segment_s or (tier.step_s and tier.segment_s % tier.step_s):
                raise RuntimeError(f"expected tier {tier.name!r}'s chunk in whole segments, in whole steps")
        for finer, coarser in zip(self.tiers, self.tiers[1:], strict=False):
            if coarser.step_s <= finer.step_s:
                raise RuntimeError(f"expected tier {coarser.name!r} coarser than {finer.name!r}")

    def tier(self, name: str) -> Tier:
        """The tier called ``name``."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise RuntimeError(f"expected one of {[t.name for t in self.tiers]}, got {name!r}")

    def closed(self, tier: Tier, segment_start: float, now_at: float) -> bool:
        """Whether the segment starting at ``segment_start`` is complete enough to consolidate."""
        return segment_start + tier.segment_s + self.close_grace_s <= now_at

    def accepts(self, sampled_at: float, now_at: float) -> bool:
        """Whether a raw sample is still inside raw retention (late replays beyond it are counted, not kept)."""
        raw = self.tiers[0]
        return raw.chunk_start(sampled_at) >= raw.drop_before(now_at)

    def effective_step(self, from_at: float, to_at: float, step_s: float) -> float:
        """``step_s``, raised so the range has at most ``MAX_POINTS`` steps."""
        return max(step_s, max(0.0, to_at - from_at) / MAX_POINTS)

    def choose(self, from_at: float, to_at: float, step_s: float, now_at: float) -> Tier:
        """The tier for a range query: the coarsest no coarser than ``step_s`` that still holds ``from_at``.

        A tier whose retention has already dropped ``from_at`` is passed over for one that kept it,
        even if coarser, so a 7-day query gets 1-min buckets rather than one day of raw points.
        The answer is also never more than about ``MAX_POINTS`` points per series.
        """
        wanted_s = self.effective_step(from_at, to_at, step_s)
        holding = [t for t in self.tiers if t.keep_s <= 0 or from_at >= now_at - t.keep_s]
        if not holding:
            return max(self.tiers, key=lambda t: math.inf if t.keep_s <= 0 else t.keep_s)
        fine_enough = [t for t in holding if t.step_s <= wanted_s]
        return fine_enough[-1] if fine_enough else holding[0]


@dataclass(slots=True)
class Buckets:
    """Rollup buckets as parallel columns: ``start[i]`` and, per series, count, min, sum, max."""

    start: list[float]
    count: list[list[int]]
    min: list[list[StoredValue | None]]
    sum: list[list[float]]
    max: list[list[StoredValue | None]]

    @classmethod
    def empty(cls, n_series: int) -> Buckets:
        """No buckets, for ``n_series`` series."""
        return cls([], [[] for _ in range(n_series)], [[] for _ in range(n_series)], [[] for _ in range(n_series)],
                   [[] for _ in range(n_series)])  # fmt: skip

    def __len__(self) -> int:
        return len(self.start)

    def extend(self, other: Buckets) -> None:
        """Append ``other``'s buckets (unmerged: ``merge_buckets`` folds equal starts)."""
        self.start.extend(other.start)
        for s in range(len(self.count)):
            self.count[s].extend(other.count[s])
            self.min[s].extend(other.min[s])
            self.sum[s].extend(other.sum[s])
            self.max[s].extend(other.max[s])

    def samples(self) -> list[int]:
        """Samples per bucket: the largest series count (a series missing in some samples counts fewer)."""
        return [max(column[i] for column in self.count) for i in range(len(self.start))]


def rollup_points(at: Sequence[float], series: Sequence[Sequence[StoredValue | None]], step_s: float) -> Buckets:
    """Raw points -> buckets of ``step_s`` aligned to the epoch; a bucket exists only if a point fell in it."""
    return merge_buckets(
        Buckets(
            start=list(at),
            count=[[0 if v is None else 1 for v in column] for column in series],
            min=[list(column) for column in series],
            sum=[[0.0 if v is None else float(v) for v in column] for column in series],
            max=[list(column) for column in series],
        ),
        step_s,
    )


def merge_buckets(parts: Buckets, step_s: float) -> Buckets:
    """Fold ``parts`` (points or finer buckets, any order) into buckets of ``step_s``, sorted by start."""
    n_series = len(parts.count)
    index: dict[float, int] = {}
    out = Buckets.empty(n_series)
    for i, at in enumerate(parts.start):
        start = math.floor(at / step_s) * step_s
        j = index.get(start)
        if j is None:
            j = index[start] = len(out.start)
            out.start.append(start)
            for s in range(n_series):
                out.count[s].append(0)
                out.min[s].append(None)
                out.sum[s].append(0.0)
                out.max[s].append(None)
        for s in range(n_series):
            n = parts.count[s][i]
            if not n:
                continue
            out.count[s][j] += n
            out.sum[s][j] += parts.sum[s][i]
            lo, hi = parts.min[s][i], parts.max[s][i]
            cur_lo, cur_hi = out.min[s][j], out.max[s][j]
            out.min[s][j] = lo if cur_lo is None or (lo is not None and lo < cur_lo) else cur_lo
            out.max[s][j] = hi if cur_hi is None or (hi is not None and hi > cur_hi) else cur_hi
    return _sorted(out)


def _sorted(b: Buckets) -> Buckets:
    order = sorted(range(len(b.start)), key=b.start.__getitem__)
    if order == list(range(len(order))):
        return b
    return Buckets(
        start=[b.start[i] for i in order],
        count=[[c[i] for i in order] for c in b.count],
        min=[[c[i] for i in order] for c in b.min],
        sum=[[c[i] for i in order] for c in b.sum],
        max=[[c[i] for i in order] for c in b.max],
    )


def find_gaps(at: Sequence[float], from_at: float, to_at: float, spacing_s: float) -> list[tuple[float, float]]:
    """Periods in [from_at, to_at] without points, longer than ``GAP_FACTOR`` expected spacings.

    ``at`` is sorted. A gap runs from the last point before it to the first after it (or to the
    range's edge), so a chart breaks its line there instead of drawing across.
    """
    limit = GAP_FACTOR * spacing_s
    gaps: list[tuple[float, float]] = []
    previous = from_at
    for t in at:
        # The first point may be up to one spacing after from_at without a gap (buckets start early).
        if t - previous > limit:
            gaps.append((previous, t))
        previous = max(previous, t)
    if to_at - previous > limit:
        gaps.append((previous, to_at))
    return gaps


def chunk_spans(tier: Tier, from_at: float, to_at: float) -> list[float]:
    """The starts of every chunk of ``tier`` that overlaps [from_at, to_at]."""
    first = tier.chunk_start(from_at)
    count = max(0, math.floor((to_at - first) / tier.chunk_s) + 1)
    return [first + k * tier.chunk_s for k in range(count)]
