"""Seq and time sanity: how far a connection's seq may run ahead, which sampled_at is believed, which sample is latest.

Four rules, each a pure function or a small class over values:

- **Seq range** (``SeqGuard``). An agent takes one sample per ``interval_s``
  and numbers them 1, 2, 3... per instance, so by ``elapsed`` seconds after
  its hello it can have reached at most ``newest_seq + elapsed / interval_s``,
  where ``newest_seq`` is the newest seq it declared in the hello (its backlog
  is everything after the hello's ack up to there). A heartbeat past that,
  with slack for clock drift and the hello's transit time, is refused with
  1008 ``seq_out_of_range``: one heartbeat with seq 2**63-1 no longer sets a
  node's ``last_seq`` and ``missing_samples`` to 9.2e18. An agent that
  declares no ``newest_seq`` (protocol version 1) has its first heartbeat as
  the baseline instead.
- **Hello ack** (``hello_ack_seq``). The collector never acks a seq above the
  agent's own ``newest_seq``: an agent would drop samples it never sent.
- **Time** (``check_sampled_at``). ``sampled_at`` more than ``MAX_FUTURE_S``
  ahead of the collector's wall clock is clamped to that bound for storage and
  display; the skew reading keeps the raw value, and liveness never looks at it.
- **Latest sample** (``replaces_latest``). The latest sample is the newest by
  seq of the current instance, never the newest by ``sampled_at``: a sample
  stamped an hour ahead can no longer freeze a node's latest sample.

Not here: dedup and gap counting (``NodeCache``), history order (by arrival
and seq, ``collector.history``), and closing the connection (the shell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.trust.refusal import Refusal, TrustReason

# Two machines' monotonic clocks drift apart by well under 0.1 % (NTP's slew limit is 500 ppm);
# 10 % more samples than the collector's clock explains also covers a tick scheduler that fires early.
DEFAULT_RATE_SLACK = 1.1
# The hello's transit time (the agent counts from when it sent the hello, the collector from when it
# arrived): up to this many seconds of samples, and never fewer than ``MIN_SLACK_SAMPLES``.
DEFAULT_SLACK_S = 10.0
MIN_SLACK_SAMPLES = 10
# How far ahead of the collector's wall clock a sample may be stamped before it is clamped. Five minutes
# is far above NTP-disciplined skew (milliseconds) and an unsynchronised VM's typical drift, and below
# Mimir's 10-minute creation grace period and Thanos Receive's too-far-in-future window (thanos#6195),
# which refuse such samples outright. Clamped, not refused: a fast clock is a fault of the node, not an
# attack, and its samples are still worth keeping by arrival.
MAX_FUTURE_S = 300.0


def slack_samples(interval_s: float, slack_s: float = DEFAULT_SLACK_S) -> int:
    """Samples of slack beyond what elapsed time explains: ``slack_s`` worth, at least ``MIN_SLACK_SAMPLES``."""
    return max(MIN_SLACK_SAMPLES, math.ceil(slack_s / interval_s))


class SeqGuard:
    """The highest seq one connection may have reached by ``now``; ``check`` refuses a seq beyond it."""

    __slots__ = ("_anchor", "_base", "interval_s", "rate_slack", "slack")

    def __init__(
        self,
        interval_s: float,
        *,
        newest_seq: int | None,
        now: float,
        rate_slack: float = DEFAULT_RATE_SLACK,
        slack_s: float = DEFAULT_SLACK_S,
    ) -> None:
        if interval_s <= 0 or rate_slack < 1.0:
            raise RuntimeError(f"expected interval_s > 0 and rate_slack >= 1, got {interval_s!r} and {rate_slack!r}")
        self.interval_s = interval_s
        self.rate_slack = rate_slack
        self.slack = slack_samples(interval_s, slack_s)
        self._base = newest_seq  # None: the first heartbeat sets it (an agent that declares no newest_seq)
        self._anchor = now

    def limit(self, now: float) -> int | None:
        """The highest seq allowed at ``now``; None while no baseline exists yet (anything goes once)."""
        if self._base is None:
            return None
        elapsed = max(0.0, now - self._anchor)
        return self._base + math.floor(elapsed * self.rate_slack / self.interval_s) + self.slack

    def check(self, seq: int, now: float) -> Refusal | None:
        """None if ``seq`` is possible by ``now``, else the refusal to close with."""
        limit = self.limit(now)
        if limit is None:
            self._base = seq
            self._anchor = now
            return None
        if seq <= limit:
            return None
        elapsed = max(0.0, now - self._anchor)
        detail = (
            f"expected seq at most {limit} ({elapsed:.1f} s after seq {self._base} at interval_s "
            f"{self.interval_s:g}, with slack), got {seq}"
        )
        return Refusal(TrustReason.SEQ_OUT_OF_RANGE, detail)


def hello_ack_seq(held_seq: int, newest_seq: int | None) -> int:
    """The seq a hello's ack may claim: what the collector holds, never above the agent's own newest seq.

    A collector whose record is ahead of the agent (a record poisoned before node keys, or restored
    from an older store) would otherwise tell the agent to drop samples it never sent, and the agent
    would then refuse the ack and reconnect forever.
    """
    if newest_seq is None:
        return held_seq
    return min(held_seq, newest_seq)


@dataclass(frozen=True, slots=True)
class SampleTime:
    """What to do with one sample's ``sampled_at``: store ``sampled_at``, read skew from ``skew_s``."""

    sampled_at: float  # clamped to at most wall + max_future_s
    clamped: bool  # count these (nodewatch_samples_clamped_total): the node's clock is far ahead
    skew_s: float  # raw agent time minus collector wall time, shown as clock skew


def check_sampled_at(sampled_at: float, wall: float, max_future_s: float = MAX_FUTURE_S) -> SampleTime:
    """``sampled_at`` as the collector stores it: clamped to ``wall + max_future_s``, skew kept raw."""
    bound = wall + max_future_s
    if sampled_at > bound:
        return SampleTime(sampled_at=bound, clamped=True, skew_s=sampled_at - wall)
    return SampleTime(sampled_at=sampled_at, clamped=False, skew_s=sampled_at - wall)


@dataclass(frozen=True, slots=True)
class LatestRef:
    """Which sample a node shows as its latest: the instance that sent it and its seq."""

    instance_id: str
    seq: int


def replaces_latest(latest: LatestRef | None, instance_id: str, seq: int) -> bool:
    """True if a sample of ``instance_id`` with ``seq`` becomes the node's latest sample.

    A node has one current instance at a time, and the cache resets the node's seq when a new
    instance takes it over, so any sample of a new instance is newer than the old instance's.
    Within an instance, the higher seq wins; ``sampled_at`` never takes part.
    """
    if latest is None or latest.instance_id != instance_id:
        return True
    return seq > latest.seq
