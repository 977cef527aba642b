"""Reconnect delays: full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff
And Jitter", 2015), as a pure class with the random source and the clock passed in.

Also here: ``Outcome``, how one connection attempt ended (what the backoff is
fed), ``http_outcome`` for an upgrade refused with an HTTP status, and
``violation_outcome`` for a connection the agent closed because the collector
broke the protocol; all read ``shared.retry``. Not here: sleeping or connecting (``agent.pusher`` does that).

Rules:
- delay = uniform(0, min(cap, base * 2**attempt)); base 0.5 s, cap 30 s;
- after a refusal the collector will repeat (HTTP 401, close 1008; ``shared.retry``
  says which) the delay is uniform between the normal cap, or the floor if higher,
  and the long cap, 5 minutes: a misconfigured agent must not hammer the collector;
- a floor (the collector's ``Retry-After`` on a 503 or 429, else the least
  delay ``shared.retry`` gives for the close code or status) raises the low
  end and keeps the jitter on top: delay = floor + uniform(0, ceiling), so a
  fleet sent away together does not come back in lockstep; a floor over the
  long cap counts as the long cap;
- a connection that stayed healthy for 60 s resets the attempt counter;
- after the agent closed a connection because the collector broke the protocol
  (a text frame, an ack above the highest seq sent, a bad frame, a flood), it
  backs off as the table says for 1008: long, at least 60 s, with jitter. A
  collector that did it once does it again at once (issue 13: a flood every second).
"""

from __future__ import annotations

import math
import random as _random
import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import CloseCode
from shared.retry import RetryAction, RetryPolicy, retry_for_close, retry_for_http

BASE_S = 0.5
CAP_S = 30.0
LONG_CAP_S = 300.0  # five minutes: a wrong token will not fix itself quickly
HEALTHY_RESET_S = 60.0

# RFC 9110 section 10.2.3 defines Retry-After for 503, RFC 6585 section 4 for 429.
BUSY_HTTP_STATUSES = frozenset({429, 503})
MAX_PEER_TEXT = 200  # characters of a peer's status phrase kept in an outcome
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection attempt ended, for the backoff and the log; always the last action."""

    reason: str
    refused: bool = False  # the collector will repeat it: back off long (shared.retry, BACKOFF_LONG)
    close_code: int | None = None
    was_connected: bool = False
    retry_after_s: float | None = None  # the collector's Retry-After on a 503 or 429, if it sent a usable one
    busy: bool = False  # the collector is at capacity: HTTP 503/429 or close 4503
    min_delay_s: float = 0.0  # the least delay before the next attempt: Retry-After, else the retry table's
    peer_fault: bool = False  # the agent closed it because the collector broke the protocol


def backs_off_long(policy: RetryPolicy) -> bool:
    """The retry table says the peer will repeat this: use the long range."""
    return policy.action is RetryAction.BACKOFF_LONG


def http_outcome(status: int, phrase: str, retry_after: str | None) -> Outcome:
    """The outcome of an upgrade answered with HTTP ``status``; a usable Retry-After beats the table's delay."""
    busy = status in BUSY_HTTP_STATUSES
    floor = retry_after_s(retry_after) if busy else None
    policy = retry_for_http(status)
    return Outcome(
        f"HTTP {status} {phrase[:MAX_PEER_TEXT]!r}",
        refused=backs_off_long(policy),
        retry_after_s=floor,
        busy=busy,
        min_delay_s=policy.min_delay_s if floor is None else floor,
    )


def violation_outcome(why: str, close_code: int, *, was_connected: bool) -> Outcome:
    """The agent closed with ``close_code`` because the collector broke the protocol: back off as for 1008."""
    policy = retry_for_close(int(CloseCode.POLICY_VIOLATION))
    return Outcome(
        why,
        refused=backs_off_long(policy),
        close_code=close_code,
        was_connected=was_connected,
        min_delay_s=policy.min_delay_s,
        peer_fault=True,
    )


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
            low_s = max(self.cap_s, floor)
            delay_s = low_s + self._random() * (self.long_cap_s - low_s)
        else:
            ceiling_s = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 62))
            delay_s = floor + self._random() * ceiling_s
        self.attempt += 1
        self.last_delay_s = delay_s
        self.last_was_long = refused
        self.last_floor_s = floor
        return delay_s
