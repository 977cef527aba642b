"""Reconnect delays: full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff
And Jitter", 2015), as a pure class with the random source and the clock passed in.

Not here: sleeping or connecting (``agent.pusher`` does that).

Rules:
- delay = uniform(0, min(cap, base * 2**attempt)); base 0.5 s, cap 30 s;
- after a refusal the collector will repeat (HTTP 401, close 1008) the ceiling
  is the long cap, 5 minutes, and the delay is at least the normal cap: a
  misconfigured agent must not hammer the collector;
- a floor from the collector (``Retry-After`` on a 503 or 429) raises the low
  end and keeps the jitter on top: delay = floor + uniform(0, ceiling), so a
  fleet sent away together does not come back in lockstep; a floor over the
  long cap counts as the long cap;
- a connection that stayed healthy for 60 s resets the attempt counter.
"""

from __future__ import annotations

import math
import random as _random
import re
from collections.abc import Callable

BASE_S = 0.5
CAP_S = 30.0
LONG_CAP_S = 300.0  # five minutes: a wrong token will not fix itself quickly
HEALTHY_RESET_S = 60.0

_DELTA_SECONDS = re.compile(r"[0-9]+")  # RFC 9110 delay-seconds; str.isdigit would also take "²"
_DELTA_MAX_DIGITS = 9  # anything longer is over any cap; int() of thousands of digits raises


def retry_after_s(value: str | None) -> float | None:
    """The seconds in a ``Retry-After`` header, or None when absent or not plain delay-seconds.

    The HTTP-date form is not understood (the collector sends seconds); it and
    any garbage mean "no floor", never an error.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text) is None:
        return None
    return math.inf if len(text) > _DELTA_MAX_DIGITS else float(text)


class Backoff:
    """Counts failed attempts and turns them into delays."""

    def __init__(
        self,
        *,
        base_s: float = BASE_S,
        cap_s: float = CAP_S,
        long_cap_s: float = LONG_CAP_S,
        healthy_reset_s: float = HEALTHY_RESET_S,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.long_cap_s = long_cap_s
        self.healthy_reset_s = healthy_reset_s
        self._random = random
        self.attempt = 0
        self.last_delay_s: float | None = None
        self.last_was_long = False
        self.last_floor_s = 0.0
        self._connected_at: float | None = None

    def connected(self, now: float) -> None:
        """Note that a connection was established at monotonic time ``now``."""
        self._connected_at = now

    def failure(self, now: float, *, refused: bool = False, floor_s: float | None = None) -> float:
        """Return the delay before the next attempt after a failure at ``now``.

        ``refused`` marks a failure the collector will repeat (401, 1008).
        ``floor_s`` is the least delay the collector asked for (``Retry-After``);
        it is capped at the long cap, and a negative or NaN floor counts as none.
        """
        if self._connected_at is not None and now - self._connected_at >= self.healthy_reset_s:
            self.attempt = 0
        self._connected_at = None
        floor = min(floor_s, self.long_cap_s) if floor_s is not None and floor_s > 0 else 0.0  # NaN > 0 is False
        if refused:
            delay_s = max(self.cap_s, floor) + self._random() * (self.long_cap_s - self.cap_s)
        else:
            ceiling_s = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 62))
            delay_s = floor + self._random() * ceiling_s
        self.attempt += 1
        self.last_delay_s = delay_s
        self.last_was_long = refused
        self.last_floor_s = floor
        return delay_s
