"""Retention tiers, rollup maths, tier choice and gaps: pure functions, time passed in."""

from __future__ import annotations

import pytest

from collector.store.policy import MAX_POINTS, Buckets, RetentionPolicy, Tier, find_gaps, merge_buckets, rollup_points

DAY = 86400.0
T0 = 1_700_000_000.0 // DAY * DAY  # a midnight, so chunk edges are easy to read


class TestTier:
    """Chunks are aligned to the epoch and expire whole."""

    def test_chunk_start_aligns_to_the_epoch(self) -> None:
        """A sample at 01:30 lives in the chunk that starts at 01:00."""
        raw = Tier("raw", 0.0, DAY, 3600.0, 3600.0)
        assert raw.chunk_start(T0 + 5400) == T0 + 3600

    def test_a_chunk_expires_only_once_all_of_it_is_older_than_retention(self) -> None:
        """With 24 h retention, yesterday's 00:00 chunk goes at 01:00 today, not a second earlier."""
        raw = Tier("raw", 0.0, DAY, 3600.0, 3600.0)
        starts = [T0 - DAY, T0 - DAY + 3600, T0]
        assert raw.expired(starts, T0 + 3599) == []
        assert raw.expired(starts, T0 + 3600) == [T0 - DAY]
        assert raw.drop_before(T0 + 3600) == T0 - DAY + 3600

    def test_retention_is_configurable(self) -> None:
        """A 2-hour raw tier drops a 3-hour-old chunk."""
        policy = RetentionPolicy(tiers=(Tier("raw", 0.0, 7200.0, 3600.0, 3600.0), Tier("1m", 60.0, DAY, DAY, 3600.0)))
        assert policy.tiers[0].expired([T0], T0 + 3 * 3600) == [T0]

    @pytest.mark.parametrize(
        "tiers",
        [
            (Tier("1m", 60.0, DAY, DAY, 3600.0),),
            (Tier("raw", 0.0, DAY, 3600.0, 3600.0), Tier("1m", 60.0, DAY, DAY, 90.0)),
            (
                Tier("raw", 0.0, DAY, 3600.0, 3600.0),
                Tier("1h", 3600.0, DAY, DAY, DAY),
                Tier("1m", 60.0, DAY, DAY, 3600.0),
            ),
        ],
    )
    def test_bad_tier_lists_are_refused(self, tiers: tuple[Tier, ...]) -> None:
        """A tier list without raw first, with segments not in whole steps, or out of order is a RuntimeError."""
        with pytest.raises(RuntimeError, match="expected"):
            RetentionPolicy(tiers=tiers)


class TestChoose:
    """A range query gets the tier whose resolution and retention fit it."""

    policy = RetentionPolicy()
    now = T0 + 40 * DAY

    @pytest.mark.parametrize(
        ("span_s", "step_s", "tier"),
        [
            (900.0, 1.0, "raw"),  # the last 15 minutes at 1 s
            (3600.0, 5.0, "raw"),  # an hour at 5 s: raw, bucketed on the fly
            (6 * 3600.0, 60.0, "1m"),
            (7 * DAY, 60.0, "1m"),  # older than raw retention: 1-min buckets
            (7 * DAY, 1.0, "1m"),  # asks for 1 s, but raw no longer holds the start
            (35 * DAY, 60.0, "1h"),  # older than the 1-min tier keeps
            (2 * 3600.0, 3600.0, "1h"),
        ],
    )
    def test_tier_by_range_and_step(self, span_s: float, step_s: float, tier: str) -> None:
        """The coarsest tier no coarser than the step that still holds the range's start."""
        assert self.policy.choose(self.now - span_s, self.now, step_s, self.now).name == tier

    def test_a_wide_range_is_never_thousands_of_points_too_many(self) -> None:
        """A 20-hour range at step 1 s would be 72,000 points: it is answered in 36-s steps instead."""
        step = self.policy.effective_step(self.now - 20 * 3600, self.now, 1.0)
        assert step == 36.0
        assert 20 * 3600 / step <= MAX_POINTS

    def test_a_range_older_than_every_tier_gets_the_longest_kept(self) -> None:
        """Two years back: only the 1-h tier could have anything."""
        assert self.policy.choose(self.now - 800 * DAY, self.now, 60.0, self.now).name == "1h"


class TestRollup:
    """Buckets hold exact min, sum, max and count, in stored units."""

    def test_buckets_are_exact_in_hundredths(self) -> None:
        """CPU 10.00 %, 20.00 % and 30.01 % in one minute: min 1000, max 3001, sum 6001, count 3."""
        b = rollup_points([T0 + 1, T0 + 2, T0 + 3], [[1000, 2000, 3001]], 60.0)
        assert (b.start, b.count, b.min, b.max, b.sum) == ([T0], [[3]], [[1000]], [[3001]], [[6001.0]])

    def test_a_missing_value_does_not_count(self) -> None:
        """A sample without a value adds nothing to that series' count or sum (not a zero)."""
        b = rollup_points([T0 + 1, T0 + 2], [[None, 500]], 60.0)
        assert (b.count, b.min, b.sum) == ([[1]], [[500]], [[500.0]])

    def test_minute_buckets_merged_to_hours_equal_a_direct_hourly_rollup(self) -> None:
        """Rolling raw -> 1 min -> 1 h gives the same numbers as raw -> 1 h: the maths is associative."""
        at = [T0 + 7 * i for i in range(1200)]
        values: list[list[int | float | None]] = [
            [(i * 37) % 10001 for i in range(1200)],
            [None if i % 5 == 0 else i for i in range(1200)],
        ]
        via_minutes = merge_buckets(rollup_points(at, values, 60.0), 3600.0)
        direct = rollup_points(at, values, 3600.0)
        assert via_minutes == direct
        assert len(direct) == 3

    def test_out_of_order_points_give_sorted_buckets(self) -> None:
        """A replayed sample older than the rest lands in its own, earlier bucket."""
        b = rollup_points([T0 + 130, T0 + 5], [[1, 2]], 60.0)
        assert b.start == [T0, T0 + 120]

    def test_empty_buckets_report_no_samples(self) -> None:
        """No points, no buckets: an empty minute is absent, never a zero."""
        assert len(merge_buckets(Buckets.empty(2), 60.0)) == 0


class TestGaps:
    """A period without samples is listed, never bridged."""

    def test_no_gap_at_a_steady_rate(self) -> None:
        """Samples every second over a minute: no gap."""
        assert find_gaps([T0 + i for i in range(61)], T0, T0 + 60, 1.0) == []

    def test_missing_samples_make_a_gap_between_their_neighbours(self) -> None:
        """Samples stop at 10 s and resume at 20 s: the gap runs from 10 to 20."""
        at = [T0 + i for i in range(11)] + [T0 + i for i in range(20, 31)]
        assert find_gaps(at, T0, T0 + 30, 1.0) == [(T0 + 10, T0 + 20)]

    def test_silence_at_the_edges_is_a_gap_too(self) -> None:
        """No samples in the range's first and last minutes: both ends are gaps."""
        assert find_gaps([T0 + 60.0], T0, T0 + 120, 1.0) == [(T0, T0 + 60), (T0 + 60, T0 + 120)]

    def test_one_missed_sample_is_already_a_gap(self) -> None:
        """At 1 Hz, 2 s between points means a sample is missing: flagged."""
        assert find_gaps([T0, T0 + 1, T0 + 3], T0, T0 + 3, 1.0) == [(T0 + 1, T0 + 3)]
