"""Tests of viewer.backoff: the reconnect delays, with an injected random source."""

from __future__ import annotations

import pytest

from viewer.backoff import Backoff


class TestBackoff:
    def test_doubles_up_to_the_cap(self) -> None:
        """Without jitter the delays double from 0.5 s and stop at 10 s."""
        backoff = Backoff(uniform=lambda _low, _high: 0.0)
        assert [backoff.next_delay_s() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    def test_reset_starts_over(self) -> None:
        """After a good session the next failure retries quickly again."""
        backoff = Backoff(uniform=lambda _low, _high: 0.0)
        for _ in range(5):
            backoff.next_delay_s()
        backoff.reset()
        assert backoff.next_delay_s() == 0.5

    def test_jitter_is_bounded(self) -> None:
        """Jitter moves a delay by at most +/-20 %, using the injected source."""
        seen: list[tuple[float, float]] = []

        def uniform(low: float, high: float) -> float:
            seen.append((low, high))
            return high

        assert Backoff(uniform=uniform).next_delay_s() == pytest.approx(0.6)
        assert seen == [(-0.2, 0.2)]

    def test_auth_failure_waits_long(self) -> None:
        """A 401 is retried after a minute, not seconds."""
        assert Backoff().auth_failed_delay_s() == 60.0
