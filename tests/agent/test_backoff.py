"""Full-jitter exponential backoff with an injected random source, and the Retry-After floor."""

from __future__ import annotations

import math

import pytest

from agent.backoff import Backoff, retry_after_s


class TestBackoff:
    def test_ceiling_doubles_from_half_a_second_to_the_cap(self) -> None:
        """With random() = 1 the delays are the ceilings: 0.5, 1, 2, ... capped at 30 s."""
        backoff = Backoff(random=lambda: 1.0)
        delays = [backoff.failure(now=0.0) for _ in range(9)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]

    def test_full_jitter_scales_the_ceiling(self) -> None:
        """The delay is random() times the ceiling, so it can be anywhere from 0 up."""
        values = iter([0.0, 0.5, 0.25])
        backoff = Backoff(random=lambda: next(values))
        assert [backoff.failure(now=0.0) for _ in range(3)] == [0.0, 0.5, 0.5]

    def test_many_failures_do_not_overflow(self) -> None:
        """After thousands of failures the ceiling is still the cap."""
        backoff = Backoff(random=lambda: 1.0)
        for _ in range(5000):
            delay = backoff.failure(now=0.0)
        assert delay == 30.0

    @pytest.mark.parametrize("random_value", [0.0, 0.5, 1.0])
    def test_refusal_backs_off_between_cap_and_five_minutes(self, random_value: float) -> None:
        """After a 401 or a 1008 the delay is in the long range, 30 s to 5 min, even on the first failure."""
        backoff = Backoff(random=lambda: random_value)
        delay = backoff.failure(now=0.0, refused=True)
        assert 30.0 <= delay <= 300.0
        assert delay == pytest.approx(30.0 + random_value * 270.0)
        assert backoff.last_was_long

    def test_attempts_reset_after_sixty_healthy_seconds(self) -> None:
        """A connection that stayed up for 60 s starts the schedule again from 0.5 s."""
        backoff = Backoff(random=lambda: 1.0)
        for _ in range(5):
            backoff.failure(now=0.0)
        backoff.connected(now=100.0)
        assert backoff.failure(now=160.0) == 0.5

    def test_short_connection_keeps_counting(self) -> None:
        """A connection that dropped after 10 s does not reset the schedule (flapping collector)."""
        backoff = Backoff(random=lambda: 1.0)
        for _ in range(5):
            backoff.failure(now=0.0)
        backoff.connected(now=100.0)
        assert backoff.failure(now=110.0) == 16.0


class TestFloor:
    """A Retry-After from the collector is the least delay; jitter stays on top of it."""

    @pytest.mark.parametrize("random_value", [0.0, 0.5, 1.0])
    def test_floor_plus_jitter_up_to_the_ceiling(self, random_value: float) -> None:
        """delay = floor + random() * ceiling: 5 s to 5.5 s on a first failure, never below 5 s."""
        backoff = Backoff(random=lambda: random_value)
        assert backoff.failure(now=0.0, floor_s=5.0) == pytest.approx(5.0 + random_value * 0.5)
        assert backoff.last_floor_s == 5.0

    def test_jitter_grows_with_the_attempts(self) -> None:
        """The jitter on top of the floor widens like the ordinary ceiling, so a fleet spreads out more each time."""
        backoff = Backoff(random=lambda: 1.0)
        delays = [backoff.failure(now=0.0, floor_s=5.0) for _ in range(8)]
        assert delays == [5.5, 6.0, 7.0, 9.0, 13.0, 21.0, 35.0, 35.0]

    def test_floor_is_capped_at_the_long_cap(self) -> None:
        """A collector asking for an hour (or forever) gets five minutes plus jitter."""
        for floor in (3600.0, math.inf):
            backoff = Backoff(random=lambda: 0.0)
            assert backoff.failure(now=0.0, floor_s=floor) == 300.0
            assert backoff.last_floor_s == 300.0

    @pytest.mark.parametrize("floor", [None, 0.0, -5.0, math.nan])
    def test_no_usable_floor_is_the_ordinary_backoff(self, floor: float | None) -> None:
        """None, zero, negative or NaN floors change nothing: the first delay is still random() * 0.5 s."""
        backoff = Backoff(random=lambda: 1.0)
        assert backoff.failure(now=0.0, floor_s=floor) == 0.5
        assert backoff.last_floor_s == 0.0

    def test_floor_applies_to_one_failure_only(self) -> None:
        """The next failure without a Retry-After goes back to the ordinary range (at the next attempt's ceiling)."""
        backoff = Backoff(random=lambda: 1.0)
        assert backoff.failure(now=0.0, floor_s=5.0) == 5.5
        assert backoff.failure(now=0.0) == 1.0
        assert backoff.last_floor_s == 0.0

    def test_floor_above_the_cap_raises_a_refusal_low_end(self) -> None:
        """A refusal with a floor over 30 s waits at least the floor; the long jitter range stays on top."""
        backoff = Backoff(random=lambda: 0.0)
        assert backoff.failure(now=0.0, refused=True, floor_s=120.0) == 120.0
        assert backoff.failure(now=0.0, refused=True, floor_s=10.0) == 30.0


class TestRetryAfterHeader:
    """Parsing the Retry-After header: delay-seconds only, anything else is no floor."""

    @pytest.mark.parametrize(("value", "seconds"), [("5", 5.0), (" 7 ", 7.0), ("0", 0.0), ("120", 120.0)])
    def test_delay_seconds(self, value: str, seconds: float) -> None:
        """Plain non-negative integers, with stray spaces, are seconds."""
        assert retry_after_s(value) == seconds

    def test_huge_value_is_longer_than_any_cap(self) -> None:
        """A thousand digits neither raises nor becomes a small number; the Backoff caps it at 5 min."""
        assert retry_after_s("9" * 1000) == math.inf
        assert Backoff(random=lambda: 0.0).failure(now=0.0, floor_s=retry_after_s("9" * 1000)) == 300.0

    @pytest.mark.parametrize(
        "value", [None, "", "soon", "-5", "1.5", "5s", "1e3", "nan", "inf", "\u00b2", "Wed, 21 Oct 2015 07:28:00 GMT"]
    )
    def test_garbage_is_ignored(self, value: str | None) -> None:
        """Negative, fractional, non-ASCII digits, HTTP-dates and words give no floor rather than an error."""
        assert retry_after_s(value) is None
