"""Per-connection and per-key budgets: what one connection, node id or credential may cost the collector.

Token buckets (RFC 2697's single-rate shape: ``rate_per_s`` tokens a second up
to ``burst``), fed the monotonic ``now`` by the caller:

- ``FrameBudget``: one ingest connection's heartbeats. Live frames may come
  at ``rate_slack`` times the hello's ``interval_s`` with a burst of
  ``burst_window_s`` worth of frames; faster is refused with 4430
  ``rate_exceeded``. The backlog the agent owes after its hello (``newest_seq``
  minus the ack) is replayed from a separate credit that is paced, not
  refused: the shell waits ``Pace.delay_s`` before reading the next frame,
  so TCP flow control slows the agent and no frame is lost.
- ``ReplayPace``: the same replay credit as the shell sees it, which pauses
  reading (``Pace`` never reaches the shell through the session).
- ``RateBudget``: a plain per-connection rate, for websocket pings (ingest
  and subscribe) and a viewer's history requests.
- ``KeyedBudget`` over ``KeyedRate``: one bucket per key, bounded in keys: hellos per node id
  (a reconnect or takeover loop) and new node ids per credential per minute.

Each returns a value: None or ``Admit`` to go on, ``Pace`` to wait, or a
``Refusal`` to close with. Not here: the per-address connection cap and the
node table's eviction order (``collector.trust.nodetable``), byte budgets of a
heartbeat (``shared.limits``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.trust.refusal import Refusal, TrustReason

# Live heartbeats may arrive at twice the hello's rate: two frames close together after a short
# network hiccup are normal, a sustained double rate is not an agent of ours (it never catches up ticks).
DEFAULT_RATE_SLACK = 2.0
# After a TCP stall the queued frames arrive at once. 30 s of frames is beyond the reference agent's own
# dead-collector detection (ws heartbeat 10 s + 5 s), after which it reconnects and replays instead.
DEFAULT_BURST_WINDOW_S = 30.0
MIN_BURST_FRAMES = 10
# Backlog replay pace: 3,600 samples (the agent's default hour) in under 4 s, while one connection
# still cannot take more than ~1,000 of the ~50,000 frames/s one core decodes (bench/e2e.py).
DEFAULT_REPLAY_RATE_PER_S = 1000.0
# Replay credit for an agent that declares no newest_seq: its default backlog, one hour at 1 Hz.
DEFAULT_UNDECLARED_REPLAY_FRAMES = 3600
# No hello earns more replay credit than this, whatever newest_seq claims: a day at 1 Hz, ~86 s of pacing.
MAX_REPLAY_FRAMES = 86_400
# Pacing sleeps shorter than this are carried as debt: a timer per 10 ms, not per frame.
MIN_PACE_SLEEP_S = 0.01
# Websocket pings: the reference agent pings every 10 s; a peer may ping once a second, ten in a row.
PING_RATE_PER_S = 1.0
PING_BURST = 10
# A reconnecting agent backs off from 0.5 s, doubling: ten hellos in a row, then one every 6 s.
HELLO_RATE_PER_S = 10 / 60
HELLO_BURST = 10
# New node ids per credential: at least 600 at once, then 10 a second. The collector raises the burst
# to --max-nodes (collector/runtime.py), so a whole fleet registers with a fresh collector at once; a
# junk-id flood then fills the table at most once, and eviction takes never-heartbeated nodes first.
NEW_NODE_RATE_PER_S = 10.0
NEW_NODE_BURST = 600
# Keys of a KeyedRate are peer-chosen node ids: bound them (~200 bytes each at worst).
DEFAULT_MAX_KEYS = 20_000


class TokenBucket:
    """``rate_per_s`` tokens a second up to ``burst``; starts full (plus ``extra`` one-time tokens)."""

    __slots__ = ("_last", "burst", "rate_per_s", "tokens")

    def __init__(self, rate_per_s: float, burst: float, now: float, extra: float = 0.0) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise RuntimeError(f"expected rate_per_s > 0 and burst >= 1, got {rate_per_s!r} and {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst + extra
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._last = now
            if self.tokens < self.burst:  # one-time extra tokens above the burst are not topped up
                self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many; False (and nothing taken) if not."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def reserve(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens even on credit; the seconds to wait before the next one (0: none)."""
        self._refill(now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate_per_s

    def retry_after_s(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there."""
        self._refill(now)
        return max(0.0, (cost - self.tokens) / self.rate_per_s)

    def full(self, now: float) -> bool:
        """True if the bucket is back at its burst: forgetting it then changes nothing."""
        self._refill(now)
        return self.tokens >= self.burst


@dataclass(frozen=True, slots=True)
class Admit:
    """Go on: handle the frame."""


@dataclass(frozen=True, slots=True)
class Pace:
    """Handle the frame, then wait ``delay_s`` before reading the next one (backlog replay only)."""

    delay_s: float


ADMIT = Admit()
FrameDecision = Admit | Pace | Refusal


class FrameBudget:
    """One ingest connection's heartbeat budget, derived from its hello; see the module docstring."""

    __slots__ = ("_live", "_replay", "_replay_end", "_replay_left", "interval_s")

    def __init__(
        self,
        interval_s: float,
        *,
        newest_seq: int | None,
        ack_seq: int,
        now: float,
        rate_slack: float = DEFAULT_RATE_SLACK,
        burst_window_s: float = DEFAULT_BURST_WINDOW_S,
        replay_rate_per_s: float = DEFAULT_REPLAY_RATE_PER_S,
        undeclared_replay_frames: int = DEFAULT_UNDECLARED_REPLAY_FRAMES,
    ) -> None:
        self.interval_s = interval_s
        burst = max(MIN_BURST_FRAMES, math.ceil(burst_window_s / interval_s))
        # A fresh connection has no stalled queue to deliver (its backlog is the paced replay credit), so its
        # live bucket starts at MIN_BURST_FRAMES and fills at the live rate: a flooder that reconnects with a
        # fresh node id each time it is refused gets 10 frames a connection, not 30 s worth (bench/faults.py).
        self._live = TokenBucket(rate_slack / interval_s, burst, now)
        self._live.tokens = min(burst, MIN_BURST_FRAMES)
        if newest_seq is None:
            owed = undeclared_replay_frames
            self._replay_end: int | None = None
        else:
            owed = max(0, newest_seq - ack_seq)
            self._replay_end = newest_seq
        self._replay_left = min(owed, MAX_REPLAY_FRAMES)
        self._replay = TokenBucket(replay_rate_per_s, max(1.0, replay_rate_per_s), now)

    @property
    def replay_left(self) -> int:
        """Backlog frames this connection may still send at the replay pace."""
        return self._replay_left

    def admit(self, seq: int, now: float) -> FrameDecision:
        """The decision on one heartbeat with ``seq`` arriving at ``now``."""
        if self._replay_left > 0 and (self._replay_end is None or seq <= self._replay_end):
            self._replay_left -= 1
            delay = self._replay.reserve(now)
            return Pace(delay) if delay > 0 else ADMIT
        if self._live.take(now):
            return ADMIT
        rate = self._live.rate_per_s
        detail = (
            f"expected at most {rate:g} heartbeats/s (interval_s {self.interval_s:g}) with bursts of "
            f"{self._live.burst:g}, got more"
        )
        return Refusal(TrustReason.RATE_EXCEEDED, detail, retry_after_s=self._live.retry_after_s(now))


class ReplayPace:
    """The shell's side of backlog pacing: after each frame while a backlog is owed, how long to stop reading.

    ``IngestSession`` admits replay frames (``FrameBudget``) but cannot pause a socket; the aiohttp
    shell builds one of these from the accepted hello and sleeps what ``frame`` returns before its next
    ``receive()``. While it sleeps aiohttp's reader fills, pauses the transport, and TCP slows the agent:
    no frame is lost. Sleeps shorter than ``min_sleep_s`` are carried as debt and taken in one, so
    1,000 frames/s cost ~100 sleeps a second, not 1,000. ``done`` once the credit is spent.
    """

    __slots__ = ("_bucket", "_left", "min_sleep_s")

    def __init__(
        self,
        owed_frames: int,
        now: float,
        rate_per_s: float = DEFAULT_REPLAY_RATE_PER_S,
        min_sleep_s: float = MIN_PACE_SLEEP_S,
    ) -> None:
        self._left = min(max(0, owed_frames), MAX_REPLAY_FRAMES)
        self._bucket = TokenBucket(rate_per_s, max(1.0, rate_per_s), now)
        self.min_sleep_s = min_sleep_s

    @property
    def done(self) -> bool:
        """True once every owed frame has been paced: the shell drops this pacer."""
        return self._left <= 0

    def frame(self, now: float) -> float:
        """One frame arrived at ``now``: the seconds to wait before reading on (0: read on at once)."""
        if self._left <= 0:
            return 0.0
        self._left -= 1
        delay = self._bucket.reserve(now)
        return delay if delay >= self.min_sleep_s else 0.0


def replay_owed(newest_seq: int | None, ack_seq: int) -> int:
    """Frames a hello's agent may replay at the paced rate: its declared backlog, or the default one."""
    if newest_seq is None:
        return DEFAULT_UNDECLARED_REPLAY_FRAMES
    return min(MAX_REPLAY_FRAMES, max(0, newest_seq - ack_seq))


class RateBudget:
    """A plain per-connection rate for one kind of event (``what`` names it in the refusal)."""

    __slots__ = ("_bucket", "what")

    def __init__(self, what: str, rate_per_s: float, burst: float, now: float) -> None:
        self.what = what
        self._bucket = TokenBucket(rate_per_s, burst, now)

    def admit(self, now: float) -> Refusal | None:
        """None to go on; a refusal once the events come faster than the rate and burst allow."""
        if self._bucket.take(now):
            return None
        detail = f"expected at most {self._bucket.rate_per_s:g} {self.what}/s with bursts of {self._bucket.burst:g}"
        return Refusal(TrustReason.RATE_EXCEEDED, detail + ", got more", self._bucket.retry_after_s(now))


def ping_budget(now: float) -> RateBudget:
    """The websocket ping budget of one connection (the shell must see pings: ``autoping=False``)."""
    return RateBudget("pings", PING_RATE_PER_S, PING_BURST, now)


class KeyedRate:
    """One token bucket per key, at most ``max_keys`` of them; ``admit`` is None or the seconds to wait."""

    __slots__ = ("_buckets", "burst", "max_keys", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: float, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise RuntimeError(f"expected max_keys >= 1, got {max_keys!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, key: str, now: float) -> float | None:
        """None if ``key`` may go on now (a token taken); else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.burst, now)
        if bucket.take(now):
            return None
        return bucket.retry_after_s(now)

    def _prune(self, now: float) -> None:
        """Drop full buckets (forgetting them changes nothing); if none is full, the oldest key.

        Dropping a bucket that is not full hands that key a fresh burst: the price of the memory bound,
        paid only when ``max_keys`` distinct keys are live within one refill time.
        """
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]


class KeyedBudget:
    """A ``KeyedRate`` whose excess is a ``Refusal`` with ``reason``; ``what`` names the limit in its detail."""

    __slots__ = ("_rate", "reason", "what")

    def __init__(self, reason: TrustReason, what: str, rate_per_s: float, burst: float, max_keys: int) -> None:
        self.reason = reason
        self.what = what
        self._rate = KeyedRate(rate_per_s, burst, max_keys)

    def admit(self, key: str, now: float) -> Refusal | None:
        """None to go on; a refusal, with the seconds to wait, if ``key`` is over its rate."""
        wait = self._rate.admit(key, now)
        if wait is None:
            return None
        rate, burst = self._rate.rate_per_s, self._rate.burst
        detail = f"expected at most {burst:g} {self.what} in a row, then {rate * 60:g} a minute, got more; "
        return Refusal(self.reason, detail + f"retry in {wait:.0f} s", retry_after_s=wait)


def hello_budget(rate_per_s: float = HELLO_RATE_PER_S, burst: float = HELLO_BURST) -> KeyedBudget:
    """Hellos per node id: bounds a reconnect loop, and two agents taking one node from each other."""
    return KeyedBudget(TrustReason.RATE_EXCEEDED, "hellos per node id", rate_per_s, burst, DEFAULT_MAX_KEYS)


def new_node_budget(rate_per_s: float = NEW_NODE_RATE_PER_S, burst: float = NEW_NODE_BURST) -> KeyedBudget:
    """New node ids per credential: the key is the shell's label for a token, never the token itself."""
    # Credentials are the operator's, and few: 4,096 labels is far beyond any token file.
    return KeyedBudget(TrustReason.NEW_NODE_RATE_EXCEEDED, "new nodes per agent token", rate_per_s, burst, 4096)
