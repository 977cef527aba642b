"""The one fake clock of the test suite: a monotonic clock that moves only when the test says so.

Pass it wherever production code takes ``clock=time.monotonic``. Not a wall
clock and not an event-loop clock: it never advances by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeClock:
    """Callable like ``time.monotonic``; ``advance()`` moves it."""

    now: float = 1000.0  # not 0: a zero start hides "if not last_seen" bugs

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
