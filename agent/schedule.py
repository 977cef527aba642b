"""The agent's pure timing: the tick schedule, and the rate limits on what a peer can make it do.

``TickSchedule``: sample N is due at ``start + N * interval_s`` on the monotonic
clock. ``TokenBucket`` and ``LogThrottle`` bound, per unit of time, the frames a
collector may make the agent answer and the log lines it may make it write
(``agent.session`` uses them). Pure: the caller passes ``now``; nothing here
sleeps. Not here: the sleeping loop (``agent.runner``).

A tick found more than ``tolerance_s`` past its due time is late: it is
counted and skipped, never bunched up with the next one, so the collector
never sees a burst of samples taken milliseconds apart after a stall.
"""

from __future__ import annotations

import math


class TickSchedule:
    """Decides, each time the loop wakes, whether to sample now and when to wake next."""

    def __init__(self, start: float, interval_s: float, tolerance_s: float | None = None) -> None:
        if interval_s <= 0:
            raise RuntimeError(f"expected interval_s > 0, got {interval_s!r}")
        self.start = start
        self.interval_s = interval_s
        # Half an interval: a sample taken later than that belongs to the next slot.
        self.tolerance_s = interval_s / 2 if tolerance_s is None else tolerance_s
        self.late_ticks = 0
        self._next_tick = 1

    def due_at(self, tick: int) -> float:
        """Monotonic time at which tick ``tick`` is due."""
        return self.start + tick * self.interval_s

    @property
    def next_due(self) -> float:
        """Monotonic time at which the loop should wake next."""
        return self.due_at(self._next_tick)

    def poll(self, now: float) -> int | None:
        """Return the tick to sample at ``now``, or None if none is due; late ticks are skipped."""
        if now < self.next_due:
            return None
        latest = math.floor((now - self.start) / self.interval_s)
        latest = max(latest, self._next_tick)  # float rounding at an exact boundary
        skipped = latest - self._next_tick
        self.late_ticks += skipped
        self._next_tick = latest + 1
        if now - self.due_at(latest) > self.tolerance_s:
            self.late_ticks += 1
            return None
        return latest


class TokenBucket:
    """``burst`` units at once, refilled at ``per_s``: what a peer may make us do (events, bytes), and how fast."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst = burst
        self.per_s = per_s
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float, amount: int = 1) -> bool:
        """Spend ``amount`` tokens at ``now``; False (nothing spent) when fewer are left."""
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.per_s)
        self._last = now if self._last is None else max(now, self._last)
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def take_up_to(self, now: float, amount: int) -> int:
        """Spend as many of ``amount`` tokens as are left at ``now`` (whole units); how many were spent."""
        self.take(now, 0)  # refill
        spent = min(amount, int(self._tokens))
        self._tokens -= spent
        return spent


class LogThrottle:
    """One line per key per ``every_s``; says how many were held back when it speaks again."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next_at: dict[str, float] = {}  # bounded: callers use a fixed set of keys
        self._held: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """None: suppress this line; else the number of lines suppressed since the last one."""
        if now < self._next_at.get(key, -float("inf")):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._next_at[key] = now + self.every_s
        return self._held.pop(key, 0)
