"""When the collector acks one agent connection's heartbeats (docs/protocol.md, section 4.1), as a pure rule.

The hello is acked at once. After it, a heartbeat is acked once ``ack_every``
heartbeats are un-acked or ``ack_interval_s`` after the first un-acked one,
whichever comes first. That second bound is a real timer (``WakeAt``), armed
once per ack window and never per frame: a single heartbeat followed by
silence is acked ``ack_interval_s`` later. When the next heartbeat is not due
before the window closes anyway, the ack goes at once: an agent sampling
slower than ``ack_interval_s`` is acked every time, with no timer at all.

``AckPacer`` is fed the seq the port holds after each heartbeat and the
session's wake-ups, and answers with the ack frame to send or the wake-up to
arm. Not here: the rest of the conversation (``collector.ingest_session``),
timers themselves (the shell arms the ``WakeAt``), I/O.
"""

from __future__ import annotations

import struct

from shared.actions import SendFrame, WakeAt

__all__ = ["ACK_INTERVAL_S", "AckPacer", "ack_frame"]

# docs/protocol.md, section 4.1: the longest a heartbeat waits for its ack.
ACK_INTERVAL_S = 5.0
# {"type": "ack", "seq": } up to the seq's own bytes: a fixmap of 2, then the keys and the "ack" tag.
_ACK_HEAD = b"\x82\xa4type\xa3ack\xa3seq"
_NOTHING: tuple[SendFrame | WakeAt, ...] = ()


def ack_frame(seq: int) -> bytes:
    """The bytes of ``encode(Ack(seq=seq))``, packed by hand (a third of packb's cost): acks are the hottest send.

    msgpack's unsigned ints: positive fixint below 128, then uint8 (0xcc), uint16 (0xcd),
    uint32 (0xce) and uint64 (0xcf), each the shortest that fits.
    """
    if seq < 128:
        return _ACK_HEAD + bytes((seq,))
    if seq < 65536:
        return _ACK_HEAD + (struct.pack(">BB", 0xCC, seq) if seq < 256 else struct.pack(">BH", 0xCD, seq))
    return _ACK_HEAD + (struct.pack(">BI", 0xCE, seq) if seq < 2**32 else struct.pack(">BQ", 0xCF, seq))


class AckPacer:
    """One connection's ack windows; every call takes the monotonic ``now`` it is about."""

    __slots__ = ("_deadline", "_every", "_interval_s", "_next_in_s", "_unacked", "held_seq")

    def __init__(self, interval_s: float = ACK_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._every = 1
        self._next_in_s = 0.0  # the hello's interval: when the next heartbeat is due
        self._unacked = 0
        self._deadline: float | None = None  # set while an ack window is open
        self.held_seq = 0  # the seq the port last said it holds: what a timed ack covers

    def hello(self, ack_seq: int, ack_every: int | None, heartbeat_interval_s: float) -> tuple[SendFrame]:
        """The hello's ack, sent at once; ``ack_every`` (None: 1) and the interval pace what follows."""
        self._every = ack_every or 1
        self._next_in_s = heartbeat_interval_s
        return (SendFrame(ack_frame(ack_seq)),)

    def heartbeat(self, held_seq: int, now: float) -> tuple[SendFrame | WakeAt, ...]:
        """A heartbeat the port took, which now holds ``held_seq``: the ack, the window's wake-up, or nothing."""
        self.held_seq = held_seq
        self._unacked += 1
        deadline = self._deadline
        if deadline is None:
            deadline = now + self._interval_s
            if self._unacked >= self._every or now + self._next_in_s >= deadline:
                return self._ack(held_seq)
            self._deadline = deadline
            return (WakeAt(deadline),)
        # Ack now if the count is reached, or if the next heartbeat is not expected before the
        # window's deadline anyway: the timer then has nothing to do.
        if self._unacked >= self._every or now + self._next_in_s >= deadline:
            return self._ack(held_seq)
        return _NOTHING

    def tick(self, now: float) -> tuple[SendFrame | WakeAt, ...]:
        """A wake-up: the ack an open window is due, a re-arm if it came early, nothing if no window is open."""
        deadline = self._deadline
        if deadline is None:
            return _NOTHING  # a wake-up for a window that an ack already closed
        if now < deadline:
            return (WakeAt(deadline),)
        return self._ack(self.held_seq)

    def _ack(self, seq: int) -> tuple[SendFrame]:
        self._unacked = 0
        self._deadline = None
        return (SendFrame(ack_frame(seq)),)
