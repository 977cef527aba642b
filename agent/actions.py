"""What ``AgentSession`` asks its shell to do, as values; and what it counts.

Each action is a frozen dataclass the shell executes in order (``agent.pusher``
over a socket, ``tests/protocol/pair.py`` in memory). Not here: any decision
about when to emit them (``agent.session``), or I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.backoff import Outcome


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send this binary frame."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendPong:
    """Answer a ping with this payload (RFC 6455 section 5.5.3)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendPing:
    """Send a keepalive ping: the collector has been silent for the keepalive interval."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Send a close frame with this code and reason, then drop the connection."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call ``tick`` at monotonic time ``at`` (or as soon as possible after it)."""

    at: float


@dataclass(frozen=True, slots=True)
class Log:
    """Log ``msg % args`` at ``level``; peer strings are already in ``args``, formatted with %r."""

    level: int
    msg: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class HelloAcked:
    """The collector acked the hello: the connection is established (the backoff may reset later)."""

    held_seq: int


Action = SendFrame | SendPong | SendPing | Close | WakeAt | Log | HelloAcked | Outcome


@dataclass(slots=True)
class SessionCounters:
    """What the session saw, over every connection of this agent instance."""

    connections: int = 0  # hellos acked
    acks: int = 0
    acks_refused: int = 0  # above the highest seq ever sent
    bad_frames: int = 0
    text_frames: int = 0
    error_frames: int = 0
    pings: int = 0
    pongs: int = 0
    floods: int = 0  # connections closed for too many unsolicited frames
    keepalive_timeouts: int = 0  # connections dropped because no pong came
    log_lines_suppressed: int = 0
