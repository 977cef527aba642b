"""What ``AgentSession`` asks its shell to do, as values; and what it counts.

Each action is a frozen dataclass the shell executes in order (``agent.pusher``
over a socket, ``tests/protocol/pair.py`` in memory). ``SendFrame``, ``Close``
and ``WakeAt`` mean what they mean to the collector's session, and come from
``shared.actions``; a ping or pong to send is ``agent.wsclient``'s ``Ping`` or
``Pong`` value. Not here: any decision about when to emit them
(``agent.session``), or I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.backoff import Outcome
from agent.wsclient import Ping, Pong
from shared.actions import Close, SendFrame, WakeAt

__all__ = [
    "Action", "Close", "HelloAcked", "Log", "SendFrame", "SendPing", "SendPong", "SessionCounters", "WakeAt",
]  # fmt: skip


# A ping or pong to send is the same value as one received: the frame's payload (RFC 6455 section 5.5).
SendPing = Ping
SendPong = Pong


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
    violation_closes: int = 0  # connections we closed because the collector broke the protocol (backed off long)
    keepalive_timeouts: int = 0  # connections dropped because no pong came
    log_lines_suppressed: int = 0
