"""Seq and time sanity: a seq no clock explains is refused, a far-future stamp is clamped, latest is by seq."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.trust.refusal import TrustReason
from collector.trust.sanity import (
    MAX_FUTURE_S,
    MIN_SLACK_SAMPLES,
    LatestRef,
    SeqGuard,
    check_sampled_at,
    hello_ack_seq,
    replaces_latest,
    slack_samples,
)
from tests.support.clock import FakeClock

SEQ_MAX = 2**63 - 1
WALL_T0 = 1_795_000_000.0


class TestSeqGuard:
    def test_the_blinding_heartbeat_is_refused(self) -> None:
        """Finding 1: one heartbeat with seq 2**63-1 right after a hello closes with 1008 seq_out_of_range."""
        clock = FakeClock()
        guard = SeqGuard(1.0, newest_seq=40, now=clock())
        clock.advance(1.0)
        refusal = guard.check(SEQ_MAX, clock())
        assert refusal is not None
        assert refusal.reason is TrustReason.SEQ_OUT_OF_RANGE
        assert refusal.code == 1008
        assert f"got {SEQ_MAX}" in refusal.detail
        assert "expected seq at most 51" in refusal.detail

    def test_the_backlog_and_elapsed_time_are_allowed(self) -> None:
        """An agent replaying its backlog up to newest_seq, then sampling live for a minute, is never refused."""
        clock = FakeClock()
        guard = SeqGuard(1.0, newest_seq=3600, now=clock())
        for seq in range(1, 3601):
            assert guard.check(seq, clock()) is None
        for seq in range(3601, 3661):
            clock.advance(1.0)
            assert guard.check(seq, clock()) is None

    def test_the_limit_grows_with_time(self) -> None:
        """The allowance is newest_seq, plus 10 % over one sample per interval, plus the slack."""
        clock = FakeClock()
        guard = SeqGuard(0.5, newest_seq=100, now=clock())
        assert guard.limit(clock()) == 100 + slack_samples(0.5)
        clock.advance(100.0)
        assert guard.limit(clock()) == 100 + 220 + slack_samples(0.5)

    def test_without_newest_seq_the_first_heartbeat_is_the_baseline(self) -> None:
        """A version-1 agent's first seq may be anything (it may have run offline for days); the next may not jump."""
        clock = FakeClock()
        guard = SeqGuard(1.0, newest_seq=None, now=clock())
        clock.advance(30.0)
        assert guard.limit(clock()) is None
        assert guard.check(259_200, clock()) is None
        clock.advance(1.0)
        assert guard.check(259_201, clock()) is None
        refusal = guard.check(SEQ_MAX, clock())
        assert refusal is not None
        assert "after seq 259200" in refusal.detail

    def test_a_clock_going_backwards_gives_no_negative_allowance(self) -> None:
        """A ``now`` before the hello (a caller's mistake, or a reordered call) allows just the slack."""
        guard = SeqGuard(1.0, newest_seq=5, now=100.0)
        assert guard.limit(50.0) == 5 + MIN_SLACK_SAMPLES

    @pytest.mark.parametrize(("interval_s", "rate_slack"), [(0.0, 1.1), (-1.0, 1.1), (1.0, 0.9)])
    def test_bad_settings_are_a_bug(self, interval_s: float, rate_slack: float) -> None:
        """A zero interval or a slack under 1 is misuse of our own API (the Hello schema bounds interval_s)."""
        with pytest.raises(RuntimeError):
            SeqGuard(interval_s, newest_seq=0, now=0.0, rate_slack=rate_slack)

    @given(
        interval_s=st.floats(min_value=0.05, max_value=3600.0),
        newest_seq=st.integers(min_value=0, max_value=SEQ_MAX // 2),
        transit_s=st.floats(min_value=0.0, max_value=10.0),
        drift=st.floats(min_value=0.95, max_value=1.0),
        delays=st.lists(st.floats(min_value=0.0, max_value=60.0), min_size=1, max_size=50),
    )
    def test_an_honest_agent_is_never_refused(
        self, interval_s: float, newest_seq: int, transit_s: float, drift: float, delays: list[float]
    ) -> None:
        """An agent whose clock runs up to 5 % fast, behind a hello delayed up to 10 s, passes every check."""
        hello_sent = 1000.0
        guard = SeqGuard(interval_s, newest_seq=newest_seq, now=hello_sent + transit_s)
        for k, delay in enumerate(delays, start=1):
            taken = hello_sent + k * interval_s * drift  # the agent's k-th live sample, by the collector's clock
            assert guard.check(newest_seq + k, taken + delay) is None

    @given(
        interval_s=st.floats(min_value=0.05, max_value=3600.0),
        newest_seq=st.integers(min_value=0, max_value=SEQ_MAX // 2),
        elapsed_s=st.floats(min_value=0.0, max_value=1e6),
        excess=st.integers(min_value=1, max_value=SEQ_MAX),
    )
    def test_past_the_limit_is_always_refused(
        self, interval_s: float, newest_seq: int, elapsed_s: float, excess: int
    ) -> None:
        """Whatever the interval and elapsed time, one seq over the limit is refused, and the limit only grows."""
        guard = SeqGuard(interval_s, newest_seq=newest_seq, now=0.0)
        limit = guard.limit(elapsed_s)
        assert limit is not None
        assert limit >= newest_seq + MIN_SLACK_SAMPLES
        assert guard.check(limit, elapsed_s) is None
        assert guard.check(limit + excess, elapsed_s) is not None
        later = guard.limit(elapsed_s + interval_s)
        assert later is not None
        assert later >= limit


class TestHelloAckSeq:
    @pytest.mark.parametrize(
        ("held", "newest", "ack"),
        [(10, 20, 10), (20, 20, 20), (SEQ_MAX, 40, 40), (5, None, 5), (0, 0, 0)],
    )
    def test_the_ack_never_exceeds_what_the_agent_sent(self, held: int, newest: int | None, ack: int) -> None:
        """An agent is never told the collector holds a seq it has not taken (finding 1's poisoned ack)."""
        assert hello_ack_seq(held, newest) == ack


class TestCheckSampledAt:
    def test_a_sample_an_hour_ahead_is_clamped_and_its_skew_kept(self) -> None:
        """Finding 3: a stamp an hour ahead is stored at wall + 5 min, and the skew still reads +3600 s."""
        verdict = check_sampled_at(WALL_T0 + 3600.0, WALL_T0)
        assert verdict.clamped
        assert verdict.sampled_at == WALL_T0 + MAX_FUTURE_S
        assert verdict.skew_s == 3600.0

    @pytest.mark.parametrize("offset_s", [-86_400.0, -1.0, 0.0, 1.0, MAX_FUTURE_S])
    def test_ordinary_skew_is_left_alone(self, offset_s: float) -> None:
        """Samples up to 5 min ahead, and replayed samples from the past, are stored as stamped."""
        verdict = check_sampled_at(WALL_T0 + offset_s, WALL_T0)
        assert not verdict.clamped
        assert verdict.sampled_at == WALL_T0 + offset_s
        assert verdict.skew_s == offset_s

    @given(
        sampled_at=st.floats(min_value=0.0, max_value=32_503_680_000.0),
        wall=st.floats(min_value=0.0, max_value=32_503_680_000.0),
    )
    def test_nothing_stored_lies_beyond_the_bound(self, sampled_at: float, wall: float) -> None:
        """Whatever the agent stamps, the stored time is at most wall + 5 min, and unclamped values are untouched."""
        verdict = check_sampled_at(sampled_at, wall)
        assert verdict.sampled_at <= wall + MAX_FUTURE_S
        assert verdict.clamped == (sampled_at > wall + MAX_FUTURE_S)
        assert verdict.clamped or verdict.sampled_at == sampled_at
        assert math.isclose(verdict.skew_s, sampled_at - wall)


class TestReplacesLatest:
    def test_a_higher_seq_of_the_same_instance_wins_whatever_its_stamp(self) -> None:
        """The latest sample is chosen by seq, so a far-future stamp cannot freeze it."""
        latest = LatestRef("inst-1", 41)
        assert replaces_latest(latest, "inst-1", 42)
        assert not replaces_latest(latest, "inst-1", 41)
        assert not replaces_latest(latest, "inst-1", 7)

    def test_a_new_instance_replaces_the_old_instances_latest(self) -> None:
        """Finding 3: after a restart (seq back to 1), the new agent's samples show, not the old frozen one."""
        assert replaces_latest(LatestRef("inst-1", 9_000), "inst-2", 1)
        assert replaces_latest(None, "inst-1", 1)
