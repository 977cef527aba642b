"""Budgets: a connection, a node id or a credential that goes faster than its share is paced or refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.trust.budget import (
    ADMIT,
    MAX_REPLAY_FRAMES,
    MIN_BURST_FRAMES,
    FrameBudget,
    KeyedRate,
    Pace,
    TokenBucket,
    hello_budget,
    new_node_budget,
    ping_budget,
)
from collector.trust.refusal import Refusal, TrustReason
from tests.support.clock import FakeClock


class TestTokenBucket:
    def test_starts_full_refills_at_its_rate_and_caps_at_the_burst(self) -> None:
        """Five tokens at once, then one a second, never more than five banked."""
        clock = FakeClock()
        bucket = TokenBucket(1.0, 5, clock())
        assert [bucket.take(clock()) for _ in range(6)] == [True] * 5 + [False]
        assert bucket.retry_after_s(clock()) == pytest.approx(1.0)
        clock.advance(1.0)
        assert bucket.take(clock())
        clock.advance(3600.0)
        assert bucket.tokens == 0
        assert bucket.full(clock())
        assert bucket.tokens == 5

    def test_extra_tokens_are_spent_once(self) -> None:
        """One-time credit above the burst is used up, not topped up again."""
        clock = FakeClock()
        bucket = TokenBucket(1.0, 2, clock(), extra=3)
        assert sum(bucket.take(clock()) for _ in range(10)) == 5
        clock.advance(100.0)
        assert sum(bucket.take(clock()) for _ in range(10)) == 2

    def test_reserve_goes_on_credit_and_says_how_long_to_wait(self) -> None:
        """Reserving past empty returns the wait that pays the debt back."""
        bucket = TokenBucket(10.0, 1, 0.0)
        assert bucket.reserve(0.0) == 0.0
        assert bucket.reserve(0.0) == pytest.approx(0.1)
        assert bucket.reserve(0.0) == pytest.approx(0.2)

    @pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (1.0, 0.5)])
    def test_bad_settings_are_a_bug(self, rate: float, burst: float) -> None:
        """A zero rate or a burst under one token is misuse of our own API."""
        with pytest.raises(RuntimeError):
            TokenBucket(rate, burst, 0.0)


class TestFrameBudget:
    def test_one_connection_flooding_small_frames_is_refused(self) -> None:
        """Finding 5: 58,000 frames/s on a 1 s interval are cut with 4430 rate_exceeded after the burst."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=0, ack_seq=0, now=clock())
        decisions = []
        for seq in range(1, 1001):
            clock.advance(1 / 58_000)
            decisions.append(budget.admit(seq, clock()))
        refusals = [d for d in decisions if isinstance(d, Refusal)]
        assert decisions[:MIN_BURST_FRAMES] == [ADMIT] * MIN_BURST_FRAMES
        assert refusals
        assert refusals[0].reason is TrustReason.RATE_EXCEEDED
        assert refusals[0].code == 4430
        assert "interval_s 1" in refusals[0].detail

    def test_an_agent_at_its_interval_is_never_refused(self) -> None:
        """An honest agent at 1 Hz for an hour, with jitter, never sees a refusal."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=0, ack_seq=0, now=clock())
        for seq in range(1, 3601):
            clock.advance(0.8 if seq % 2 else 1.2)
            assert budget.admit(seq, clock()) is ADMIT

    def test_a_stall_delivers_its_queue_at_once(self) -> None:
        """After a 25 s TCP stall the 25 queued heartbeats arrive together and are all accepted."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=0, ack_seq=0, now=clock())
        clock.advance(25.0)
        assert all(budget.admit(seq, clock()) is ADMIT for seq in range(1, 26))

    def test_the_backlog_is_paced_not_refused(self) -> None:
        """Replaying 3,600 owed samples at once is slowed to the replay pace; none is refused."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=3600, ack_seq=0, now=clock(), replay_rate_per_s=1000.0)
        decisions = [budget.admit(seq, clock()) for seq in range(1, 3601)]
        assert not any(isinstance(d, Refusal) for d in decisions)
        paced = [d for d in decisions if isinstance(d, Pace)]
        assert len(paced) == 2600
        assert paced[-1].delay_s == pytest.approx(2.6)
        assert budget.replay_left == 0

    def test_live_frames_after_the_backlog_use_the_live_rate(self) -> None:
        """Past newest_seq the frames are live, so a flood after the replay is refused."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=5, ack_seq=3, now=clock())
        assert budget.replay_left == 2
        results = [budget.admit(seq, clock()) for seq in range(4, 100)]
        assert isinstance(results[-1], Refusal)
        assert sum(r is ADMIT for r in results) == 2 + MIN_BURST_FRAMES  # a fresh connection's live bucket

    def test_a_fresh_connection_earns_its_burst_with_time(self) -> None:
        """A new connection may send 10 frames at once; after 15 s at 1 Hz its bucket holds the 30 s burst."""
        clock = FakeClock()
        budget = FrameBudget(1.0, newest_seq=0, ack_seq=0, now=clock())
        clock.advance(15.0)
        assert all(budget.admit(seq, clock()) is ADMIT for seq in range(1, 31))
        assert isinstance(budget.admit(31, clock()), Refusal)

    def test_a_huge_newest_seq_earns_bounded_credit(self) -> None:
        """Claiming newest_seq 2**63-1 buys at most a day of paced replay, not an endless flood."""
        budget = FrameBudget(1.0, newest_seq=2**63 - 1, ack_seq=0, now=0.0)
        assert budget.replay_left == MAX_REPLAY_FRAMES

    def test_an_agent_without_newest_seq_gets_its_default_backlog(self) -> None:
        """A version-1 agent may replay its default hour of backlog before the live rate applies."""
        budget = FrameBudget(1.0, newest_seq=None, ack_seq=0, now=0.0, undeclared_replay_frames=100)
        assert budget.replay_left == 100
        assert not any(isinstance(budget.admit(seq, 0.0), Refusal) for seq in range(1, 101))

    @given(
        interval_s=st.floats(min_value=0.05, max_value=60.0),
        jitter=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    )
    def test_no_honest_schedule_is_refused(self, interval_s: float, jitter: list[float]) -> None:
        """Samples taken on the interval and delivered up to half an interval late always pass."""
        budget = FrameBudget(interval_s, newest_seq=0, ack_seq=0, now=0.0)
        arrivals = sorted((k + j) * interval_s for k, j in enumerate(jitter, start=1))
        for seq, at in enumerate(arrivals, start=1):
            assert budget.admit(seq, at) is ADMIT


class TestPingAndHelloBudgets:
    def test_a_ping_flood_is_refused(self) -> None:
        """Ten pings in a row pass, the eleventh within the same second closes with rate_exceeded."""
        budget = ping_budget(0.0)
        assert [budget.admit(0.0) for _ in range(10)] == [None] * 10
        refusal = budget.admit(0.0)
        assert refusal is not None
        assert "pings/s" in refusal.detail
        assert budget.admit(1.0) is None

    def test_a_reconnect_loop_on_one_node_id_is_refused(self) -> None:
        """Finding 2: a hello every 100 ms for one node id is refused after ten, and other ids are untouched."""
        clock = FakeClock()
        budget = hello_budget()
        results = []
        for _ in range(20):
            clock.advance(0.1)
            results.append(budget.admit("web-01", clock()))
        assert results[:10] == [None] * 10
        refusal = results[10]
        assert refusal is not None
        assert refusal.code == 4430
        assert refusal.retry_after_s is not None
        assert refusal.retry_after_s > 0
        assert budget.admit("web-02", clock()) is None

    def test_new_nodes_per_credential_are_capped(self) -> None:
        """Finding 'node table filled': 10,000 junk ids from one token stop at the burst, then 10 a second."""
        clock = FakeClock()
        budget = new_node_budget(rate_per_s=10.0, burst=600)
        admitted = sum(budget.admit("agent-token-1", clock()) is None for _ in range(10_000))
        assert admitted == 600
        refusal = budget.admit("agent-token-1", clock())
        assert refusal is not None
        assert refusal.reason is TrustReason.NEW_NODE_RATE_EXCEEDED
        assert budget.admit("agent-token-2", clock()) is None
        clock.advance(1.0)
        assert sum(budget.admit("agent-token-1", clock()) is None for _ in range(100)) == 10


class TestKeyedRate:
    def test_keys_are_bounded(self) -> None:
        """A peer inventing node ids cannot grow the table past ``max_keys``."""
        rate = KeyedRate(1.0, 2, max_keys=100)
        for i in range(10_000):
            rate.admit(f"junk-{i}", 0.0)
        assert len(rate) <= 100

    def test_full_buckets_are_dropped_before_live_ones(self) -> None:
        """When the table is full, a key back at its burst goes first, and a throttled key stays throttled."""
        rate = KeyedRate(0.1, 1, max_keys=2)  # one token per 10 s
        assert rate.admit("idle", 0.0) is None
        assert rate.admit("hot", 9.0) is None
        assert rate.admit("new", 10.5) is None  # "idle" is full again and is dropped; "hot" is not
        assert len(rate) == 2
        assert rate.admit("hot", 10.5) is not None

    def test_bad_settings_are_a_bug(self) -> None:
        """A table with no room is misuse of our own API."""
        with pytest.raises(RuntimeError):
            KeyedRate(1.0, 1, max_keys=0)
