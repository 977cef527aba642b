"""Full-jitter exponential backoff with an injected random source."""

from __future__ import annotations

import pytest

from agent.backoff import Backoff


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
