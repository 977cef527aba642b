"""One agent connection's protocol rules (docs/protocol.md, section 4.1) as a pure state machine.

``IngestSession`` is the collector's side of ``/api/v1/ingest``, in the manner of
h11's ``Connection``: the shell feeds it what happened and executes the actions
it returns. It does no I/O, imports no asyncio, and reads no clock: every call
takes the monotonic ``now``.

Public API (kept stable: ``tests/protocol`` pairs it with the agent's session)::

    session = IngestSession(port, now=clock())   # right after the websocket upgrade
    actions = session.start()                    # (WakeAt(hello deadline),)
    actions = session.receive_frame(data, now)   # bytes: a binary frame; str: a text frame
    actions = session.tick(now)                  # a WakeAt's time has come (early or late is fine)
    actions = session.receive_close(code, now)   # the peer closed (its code), or the socket dropped (None)
    actions = session.receive_ping(now)          # a websocket ping arrived (the shell answers the pong itself)
    actions = session.fail(now)                  # the shell hit a bug of ours on this connection: 1011

Each call returns a tuple of actions, to be executed in order:

- ``SendFrame(data)``: send these bytes as one binary frame.
- ``Close(code, reason, detail)``: log one line, count ``reason``, close with ``code`` and ``reason``.
  An ``Error`` frame with the same reason precedes it as a ``SendFrame``.
- ``Drop(detail)``: abort the connection without a close frame (the peer sees 1006):
  another connection of the same agent instance replaced this one.
- ``WakeAt(at)``: call ``tick`` at monotonic time ``at``; it replaces any earlier ``WakeAt``.

The rules enforced here: a hello first and within ``hello_timeout_s``, one hello
per connection, heartbeats only after it (an agent need not wait for the hello's
ack), binary frames only (a text frame gets 1003), and ack pacing: the hello is
acked at once, then a heartbeat once ``hello.ack_every`` heartbeats are un-acked or
``ack_interval_s`` after the first un-acked one, whichever comes first. That second
bound is a real timer (``WakeAt``), armed once per ack window, never per frame: a
single heartbeat followed by silence is acked ``ack_interval_s`` later.

The trust rules (docs/security.md, 3.2 and 3.3), set up by the hello: a
``SeqGuard`` refuses a seq that neither elapsed time nor the declared backlog
explains (1008 ``seq_out_of_range``), and a ``FrameBudget`` refuses heartbeats
faster than twice the hello's rate past a burst (4430 ``rate_exceeded``);
``receive_ping(now)`` does the same for websocket pings, for a shell that turns
aiohttp's autoping off. Both checks cost 0.3-0.6 us a heartbeat (8.8 -> 9.3 us per
heartbeat through session, port and cache, best of 5 over 100,000): ~4 ms of CPU a
second at 10,000 nodes sampling at 1 Hz.

What the samples do to the node is not decided here: the session hands each
decoded message to an ``IngestPort``, which answers with the seq to ack.
``CachePort(cache, conn, wall_clock, observer=None)`` (``collector.cache_port``,
named here too) is the one over a ``NodeCache``; its optional ``IngestObserver`` hears of each accepted hello, the
changes to fan out, the connection a hello replaced and every heartbeat applied
(``NullObserver`` ignores them all). A heartbeat reaches the port with the frame
to relay it as: the agent's own bytes, or those bytes re-packed with float64
when the agent packed a float as float32 (``shared.codec.FrameDecoder``).
``session.phase`` says where the conversation is (``Phase``).

Not here: sockets, timers, logging and counters (``collector.ingest`` is the
aiohttp shell).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from collector.cache_port import CachePort, IngestObserver, NullObserver
from collector.trust.budget import DEFAULT_UNDECLARED_REPLAY_FRAMES as UNDECLARED_REPLAY_FRAMES
from collector.trust.budget import FrameBudget, FrameDecision, RateBudget, ping_budget
from collector.trust.refusal import Refusal
from collector.trust.sanity import DEFAULT_SLACK_S, SeqGuard
from shared.codec import INGEST_LIMITS, FrameDecoder, encode
from shared.errors import CLOSE_CODE_FOR_REASON, ErrorReason, ProtocolError
from shared.messages import Error, Heartbeat, Hello, Message

__all__ = [  # CachePort and its observer live in collector.cache_port; the session's API names them from here
    "ACK_INTERVAL_S",
    "HELLO_TIMEOUT_S",
    "NO_ACTIONS",
    "Action",
    "Actions",
    "CachePort",
    "Close",
    "Drop",
    "IngestObserver",
    "IngestPort",
    "IngestSession",
    "NullObserver",
    "Phase",
    "SendFrame",
    "WakeAt",
    "ack_frame",
]

# docs/protocol.md, section 4.1: the longest a heartbeat waits for its ack.
ACK_INTERVAL_S = 5.0
# docs/protocol.md, section 4.1: an agent sends its hello within this long of the upgrade.
HELLO_TIMEOUT_S = 10.0
# Error.detail is at most 1,024 characters (docs/protocol.md, section 5.4).
MAX_ERROR_DETAIL = 1024


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send ``data`` as one binary websocket frame."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close with ``code`` and ``reason`` (the close frame's text); ``detail`` is for the log line."""

    code: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Abort the transport with no close frame; ``detail`` is for the log line."""

    detail: str


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call ``tick`` at monotonic time ``at``; supersedes every earlier WakeAt of this session."""

    at: float


Action = SendFrame | Close | Drop | WakeAt
Actions = tuple[Action, ...]
NO_ACTIONS: Actions = ()


class IngestPort(Protocol):
    """Where a session delivers what the agent sent; one port per connection."""

    def hello(self, hello: Hello, now: float) -> int:
        """Register the hello; return the highest seq held for its instance. ProtocolError refuses it."""
        ...

    def heartbeat(self, heartbeat: Heartbeat, frame: bytes, now: float) -> int | None:
        """Apply a heartbeat (``frame`` is its validated bytes); the seq to ack, None if replaced."""
        ...

    def closed(self, clean: bool, now: float) -> None:
        """The connection ended after a hello was accepted; ``clean`` for a close 1000 from the agent."""
        ...


class Phase(Enum):
    """Where a session is in section 4.1's conversation."""

    AWAIT_HELLO = "await_hello"
    STREAMING = "streaming"
    CLOSED = "closed"


# {"type": "ack", "seq": } up to the seq's own bytes: a fixmap of 2, then the keys and the "ack" tag.
_ACK_HEAD = b"\x82\xa4type\xa3ack\xa3seq"


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


def _expect_hello(message: Message, phase: Phase) -> Hello:
    """``message`` if it is the hello the conversation waits for; ProtocolError otherwise."""
    if phase is Phase.STREAMING:
        raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a heartbeat, got {message.type!r}")
    if not isinstance(message, Hello):
        raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a hello first, got {message.type!r}")
    return message


_CLOSED = Phase.CLOSED
_STREAMING = Phase.STREAMING


class IngestSession:
    """The collector's half of one ingest conversation; see the module docstring for the API."""

    __slots__ = (
        "_ack_deadline",
        "_ack_every",
        "_ack_interval_s",
        "_admit",
        "_decode",
        "_hb_interval_s",
        "_held_seq",
        "_hello_deadline",
        "_pings",
        "_seq_guard",
        "_seq_ok",
        "_unacked",
        "hello_timeout_s",
        "phase",
        "port",
    )

    def __init__(
        self,
        port: IngestPort,
        *,
        now: float,
        hello_timeout_s: float = HELLO_TIMEOUT_S,
        ack_interval_s: float = ACK_INTERVAL_S,
        decoder: FrameDecoder | None = None,
    ) -> None:
        """``decoder`` may be shared by every session of one event loop (the shell shares one)."""
        self.port = port
        self._decode = (decoder if decoder is not None else FrameDecoder(INGEST_LIMITS)).decode
        self.phase = Phase.AWAIT_HELLO
        self.hello_timeout_s = hello_timeout_s
        self._hello_deadline = now + hello_timeout_s
        self._ack_interval_s = ack_interval_s
        self._ack_every = 1
        self._hb_interval_s = 0.0
        self._unacked = 0
        self._held_seq = 0  # the seq the port last said it holds: what a timed ack covers
        self._ack_deadline: float | None = None  # set while an ack window is open
        # Set by the hello (docs/security.md, 3.2 and 3.3): the seq range and the heartbeat budget.
        self._seq_guard: SeqGuard | None = None
        self._seq_ok = -1  # a limit the guard already gave: a seq up to it needs no new check (limits only grow)
        self._admit: Callable[[int, float], FrameDecision] | None = None
        self._pings: RateBudget = ping_budget(now)  # from the upgrade on: pings need no hello

    def start(self) -> Actions:
        """The actions to run right after the upgrade: the hello deadline's wake-up."""
        return (WakeAt(self._hello_deadline),)

    def receive_frame(self, data: bytes | str, now: float) -> Actions:  # noqa: PLR0911 - the hot path, one call
        """One frame from the agent: binary (bytes) or text (str)."""
        phase = self.phase
        if phase is _CLOSED:
            return NO_ACTIONS
        if type(data) is not bytes:
            detail = f"expected binary msgpack frames, got text {str(data)[:40]!r}"
            return self._refuse(ProtocolError(ErrorReason.TEXT_FRAME, detail), now)
        try:
            message, frame = self._decode(data)
            if type(message) is not Heartbeat or phase is not _STREAMING:
                return self._hello(_expect_hello(message, phase), now)
            seq = message.seq
            if seq > self._seq_ok and (refusal := self._check_seq(seq, now)) is not None:
                return self._refuse(refusal.error(), now)
            # The budget's Pace (backlog replay) is admitted as is: pacing needs the shell to pause reading.
            if self._admit is not None and type(decision := self._admit(seq, now)) is Refusal:
                return self._refuse(decision.error(), now)
            ack_seq = self.port.heartbeat(message, frame, now)
        except ProtocolError as exc:
            return self._refuse(exc, now)
        # The hot path (once per heartbeat): no allocation but the ack's, no timer but one per ack window.
        if ack_seq is None:
            self.phase = _CLOSED
            return (Drop("another connection of this agent instance holds the node now"),)
        self._held_seq = ack_seq
        self._unacked += 1
        deadline = self._ack_deadline
        if deadline is None:
            deadline = now + self._ack_interval_s
            if self._unacked >= self._ack_every or now + self._hb_interval_s >= deadline:
                return self._ack(ack_seq)
            self._ack_deadline = deadline
            return (WakeAt(deadline),)
        # Ack now if the count is reached, or if the next heartbeat is not expected before the
        # window's deadline anyway: the timer then has nothing to do (and an agent sampling slower
        # than ack_interval_s is acked every time, with no timer at all).
        if self._unacked >= self._ack_every or now + self._hb_interval_s >= deadline:
            return self._ack(ack_seq)
        return NO_ACTIONS

    def tick(self, now: float) -> Actions:
        """A wake-up: refuse a late hello, or send the ack an open window is due."""
        if self.phase is Phase.AWAIT_HELLO:
            if now < self._hello_deadline:
                return (WakeAt(self._hello_deadline),)
            detail = f"expected a hello within {self.hello_timeout_s:g} s, got nothing"
            return self._refuse(ProtocolError(ErrorReason.HELLO_TIMEOUT, detail), now)
        deadline = self._ack_deadline
        if self.phase is Phase.CLOSED or deadline is None:
            return NO_ACTIONS  # a wake-up for a window that an ack already closed
        if now < deadline:
            return (WakeAt(deadline),)
        return self._ack(self._held_seq)

    def receive_ping(self, now: float) -> Actions:
        """A websocket ping: nothing to do while under the ping budget; past it, 4430 ``rate_exceeded``."""
        if self.phase is _CLOSED:
            return NO_ACTIONS
        refusal = self._pings.admit(now)
        return NO_ACTIONS if refusal is None else self._refuse(refusal.error(), now)

    def receive_close(self, code: int | None, now: float) -> Actions:
        """The agent closed with ``code``, or the connection dropped (None)."""
        if self.phase is Phase.STREAMING:
            self.port.closed(code == 1000, now)
        self.phase = Phase.CLOSED
        return NO_ACTIONS

    def fail(self, now: float) -> Actions:
        """A bug of ours broke this connection: an Error frame, then 1011 ``internal``; the cache hears of it."""
        detail = "expected to handle this connection, got an internal error in the collector"
        return self._refuse(ProtocolError(ErrorReason.INTERNAL, detail), now)

    def _check_seq(self, seq: int, now: float) -> Refusal | None:
        """The seq guard's verdict on ``seq``; remembers the limit it passed, so most heartbeats skip this."""
        guard = self._seq_guard
        if guard is None:  # pragma: no cover - heartbeats reach here only after the hello set it
            return None
        refusal = guard.check(seq, now)
        if refusal is None:
            limit = guard.limit(now)
            self._seq_ok = seq if limit is None else limit
        return refusal

    def _hello(self, hello: Hello, now: float) -> Actions:
        ack_seq = self.port.hello(hello, now)
        self.phase = Phase.STREAMING
        # An agent that declares no newest_seq (before issue 13) has its first heartbeat as the baseline and
        # may replay a default backlog behind it at once: that many samples of slack, not 10 s worth.
        slack_s = DEFAULT_SLACK_S if hello.newest_seq is not None else UNDECLARED_REPLAY_FRAMES * hello.interval_s
        self._seq_guard = SeqGuard(hello.interval_s, newest_seq=hello.newest_seq, now=now, slack_s=slack_s)
        self._seq_ok = -1
        self._admit = FrameBudget(hello.interval_s, newest_seq=hello.newest_seq, ack_seq=ack_seq, now=now).admit
        self._ack_every = hello.ack_every or 1
        self._hb_interval_s = hello.interval_s
        return (SendFrame(ack_frame(ack_seq)),)

    def _ack(self, seq: int) -> Actions:
        self._unacked = 0
        self._ack_deadline = None
        return (SendFrame(ack_frame(seq)),)

    def _refuse(self, exc: ProtocolError, now: float) -> Actions:
        """An Error frame and the reason's close code; the cache hears the connection ended."""
        if self.phase is Phase.STREAMING:
            self.port.closed(False, now)
        self.phase = Phase.CLOSED
        reason = exc.reason.value
        error = encode(Error(reason=reason, detail=exc.detail[:MAX_ERROR_DETAIL]))
        return (SendFrame(error), Close(int(CLOSE_CODE_FOR_REASON[exc.reason]), reason, exc.detail))
