"""What the agent will read from its collector on one connection: a budget on bytes, frames and pings.

An honest collector sends little: the hello's ack, at most one ack per heartbeat
(one per ``ack_every`` of them, as a rule), one error before a close, a pong per
keepalive ping, and no pings at all (docs/protocol.md, section 4.1). A hostile
one can send frames as fast as loopback carries them, and every one costs the
agent parsing (issue 13, finding 13: 43-49 % of a core). ``InboundBudget`` is
what ``agent.transport.Link`` charges: bytes before they are parsed, frames and
pings after. Every frame the agent sends earns the credit of one ack, so a
collector acking each heartbeat of a long replay stays inside it. Past the
budget the link closes 1008 ``too_many_frames`` and reads nothing more;
``parse`` runs bytes through the budget and the frame reader and says what to refuse.

Pure: no sockets, no clock of its own (``now`` is passed in). Not here: what a
frame means, or which frames carry progress (``agent.session`` has its own,
smaller budget for those that do not), or the backoff after the close
(``agent.backoff.violation_outcome``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.schedule import TokenBucket
from agent.wire import MAX_INBOUND_BYTES
from agent.wsclient import BINARY, PING, CloseFrame, Event, FrameReader, Ping, Pong, WebSocketError
from shared.errors import CloseCode

# One ack at most: a fixmap of two keys, "type": "ack" and a uint64 seq, is 23 bytes, plus a 2-byte frame head.
ACK_FRAME_BYTES = 32
# Acks owed for frames sent but not yet charged: a replay's in-flight window (256 KiB of send buffer over
# ~300-byte heartbeats is under 900 frames) fits, a day of unspent credit does not.
MAX_EARNED_FRAMES = 1024


@dataclass(frozen=True, slots=True)
class InboundLimits:
    """How much a collector may send beyond what the agent's own frames earn; each far above an honest one."""

    # Frames that nothing we sent earned (errors, unsolicited pongs): 64 at once, then 4 a second.
    frame_burst: int = 64
    frames_per_s: float = 4.0
    # Bytes: two of the largest messages the agent accepts at once, then 16 KiB a second.
    byte_burst: int = 2 * MAX_INBOUND_BYTES
    bytes_per_s: float = 16 * 1024.0
    # Pings: our collector never pings agents; a proxy's keepalive is one every few seconds.
    ping_burst: int = 10
    pings_per_s: float = 1.0


class InboundBudget:
    """One connection's allowance; ``take_bytes`` and ``take_frames`` return the reason once it is spent."""

    def __init__(self, limits: InboundLimits | None = None) -> None:
        self.limits = limits if limits is not None else InboundLimits()
        self._bytes = TokenBucket(self.limits.byte_burst, self.limits.bytes_per_s)
        self._frames = TokenBucket(self.limits.frame_burst, self.limits.frames_per_s)
        self._pings = TokenBucket(self.limits.ping_burst, self.limits.pings_per_s)
        self._earned_frames = 0  # acks our sent frames may draw
        self._owed_pongs = 0  # pongs our keepalive pings may draw

    def sent(self, opcode: int) -> None:
        """The agent sent a frame: a data frame may be acked, a ping answered."""
        if opcode == BINARY:
            self._earned_frames = min(MAX_EARNED_FRAMES, self._earned_frames + 1)
        elif opcode == PING:
            self._owed_pongs = min(MAX_EARNED_FRAMES, self._owed_pongs + 1)

    def take_bytes(self, size: int, now: float) -> tuple[int, str | None]:
        """Charge up to ``size`` received bytes before they are parsed: how many may be, and why not all.

        The allowed bytes are a prefix of what arrived, so the same stream gets the same answer
        however the kernel split it into reads.
        """
        earned = self._earned_frames * ACK_FRAME_BYTES
        if size <= earned:
            return size, None
        allowed = earned + self._bytes.take_up_to(now, size - earned)
        if allowed == size:
            return size, None
        limits = self.limits
        return allowed, f"over {limits.byte_burst} bytes at once, then {limits.bytes_per_s:g}/s, beyond what it acked"

    def take_frames(self, events: Sequence[Event], now: float) -> tuple[Sequence[Event], str | None]:
        """The events within the budget, and the reason when it ran out (the rest are not handled)."""
        limits = self.limits
        for index, event in enumerate(events):
            if isinstance(event, CloseFrame):
                continue
            if isinstance(event, Ping):
                if not self._pings.take(now):
                    return events[:index], f"over {limits.ping_burst} pings at once, then {limits.pings_per_s:g}/s"
            elif isinstance(event, Pong) and self._owed_pongs:
                self._owed_pongs -= 1
            elif not isinstance(event, Pong) and self._earned_frames:
                self._earned_frames -= 1
            elif not self._frames.take(now):
                return events[:index], f"over {limits.frame_burst} frames at once, then {limits.frames_per_s:g}/s"
        return events, None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the link refuses what the collector sent: the close code and reason to send, and a line for the log."""

    code: int
    reason: str
    why: str


def parse(
    reader: FrameReader, budget: InboundBudget, data: bytes, now: float
) -> tuple[Sequence[Event], Refusal | None]:
    """The events in ``data`` that the budget allows, and the refusal when bytes or frames were bad or too many."""
    allowed, over_bytes = budget.take_bytes(len(data), now)
    try:
        events = reader.feed(data[:allowed] if over_bytes is not None else data)
    except WebSocketError as exc:
        return (), Refusal(exc.close_code, exc.reason[:100], f"the collector sent bad frames ({exc.reason})")
    kept, over = budget.take_frames(events, now)
    over = over if over is not None else over_bytes
    return kept, None if over is None else _too_many(over)


def _too_many(over: str) -> Refusal:
    return Refusal(int(CloseCode.POLICY_VIOLATION), "too_many_frames", f"the collector sent {over}")
