"""When the collector acks an agent's heartbeats: a pure pacer per connection, clock passed in.

Acks are cumulative (docs/protocol.md, section 4.1), so skipping some loses
nothing: the next one covers them. Each ack is a send() on the agent's socket,
which at 1 Hz per node was the collector's largest single cost. The pacer acks
once ``every`` heartbeats (the agent's ``hello.ack_every``, 1 when it sent
none) or once ``interval_s`` has passed since the last ack, whichever comes
first. The hello is always acked at once by the caller.

Not here: sending (``collector.app``).
"""

from __future__ import annotations

# The longest a sample waits for its ack while heartbeats keep arriving.
ACK_INTERVAL_S = 5.0


class AckPacer:
    """Counts heartbeats since the last ack and says when the next one is due."""

    __slots__ = ("_acked_at", "_unacked", "every", "interval_s")

    def __init__(self, every: int | None, interval_s: float, now: float) -> None:
        """Start right after the hello's ack, sent at monotonic time ``now``."""
        self.every = max(1, every or 1)
        self.interval_s = interval_s
        self._unacked = 0
        self._acked_at = now

    def due(self, now: float) -> bool:
        """Count one heartbeat received at ``now``; True if it must be acked (the caller then acks)."""
        self._unacked += 1
        if self._unacked >= self.every or now - self._acked_at >= self.interval_s:
            self._unacked = 0
            self._acked_at = now
            return True
        return False
