"""Small pure meters for /api/v1/health: an event rate over a sliding window and event-loop lag.

Both take ``now`` from the caller (a monotonic clock); neither sleeps nor
schedules anything. The task that probes the loop lives in ``collector.app``.
"""

from __future__ import annotations

import math
from collections import deque


class RateMeter:
    """Events per second over the last ``window_s`` seconds, in one-second buckets."""

    def __init__(self, window_s: int = 10) -> None:
        if window_s < 1:
            raise RuntimeError(f"expected window_s >= 1, got {window_s}")
        self.window_s = window_s
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self.total = 0

    def record(self, now: float, count: int = 1) -> None:
        """Count ``count`` events that happened at ``now``."""
        second = math.floor(now)
        self.total += count
        buckets = self._buckets
        if buckets and (last := buckets[-1])[0] == second:
            last[1] += count  # the same second as the last event: nothing to trim (this runs per heartbeat)
            return
        buckets.append([second, count])
        self._trim(second)

    def rate_per_s(self, now: float) -> float:
        """Average events per second over the completed part of the window."""
        second = math.floor(now)
        self._trim(second)
        # Only whole past seconds count, so the rate does not dip at each second's start.
        events = sum(count for sec, count in self._buckets if sec < second)
        return events / self.window_s

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] < second - self.window_s:
            self._buckets.popleft()


class LagMeter:
    """The latest and the worst recent lateness of a periodic sleep, in seconds."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.last_s = 0.0
        self._samples: deque[tuple[float, float]] = deque()  # (now, lag_s)

    def record(self, now: float, lag_s: float) -> None:
        """Record one probe: it woke ``lag_s`` later than asked."""
        self.last_s = max(0.0, lag_s)
        self._samples.append((now, self.last_s))
        while self._samples and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()

    def max_s(self, now: float) -> float:
        """The worst lag seen in the last ``window_s`` seconds."""
        return max((lag for at, lag in self._samples if at >= now - self.window_s), default=0.0)
