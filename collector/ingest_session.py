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

Each call returns a tuple of actions, to be executed in order (``SendFrame``,
``Close`` and ``WakeAt`` are ``shared.actions``', the agent's session returns them too):

- ``SendFrame(data)``: send these bytes as one binary frame.
- ``Close(code, reason, detail)``: log one line, count ``reason``, close with ``code`` and ``reason``.
  An ``Error`` frame with the same reason precedes it as a ``SendFrame``.
- ``Drop(detail)``: abort the connection without a close frame (the peer sees 1006):
  another connection of the same agent instance replaced this one.
- ``WakeAt(at)``: call ``tick`` at monotonic time ``at``; it replaces any earlier ``WakeAt``.

The rules enforced here: a hello first and within ``hello_timeout_s``, one hello
per connection, heartbeats only after it (an agent need not wait for the hello's
ack), binary frames only (a text frame gets 1003), and ack pacing
(``collector.acks.AckPacer``): the hello acked at once, then a heartbeat once
``hello.ack_every`` heartbeats are un-acked or ``ack_interval_s`` after the first
un-acked one, whichever comes first, that second bound a real timer (``WakeAt``)
armed once per ack window, never per frame.

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

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from collector.acks import ACK_INTERVAL_S, AckPacer, ack_frame
from collector.cache_port import CachePort, IngestObserver, NullObserver
from collector.trust.budget import DEFAULT_UNDECLARED_REPLAY_FRAMES as UNDECLARED_REPLAY_FRAMES
from collector.trust.budget import FrameBudget, FrameDecision, RateBudget, ping_budget
from collector.trust.refusal import Refusal
from collector.trust.sanity import DEFAULT_SLACK_S, SeqGuard
from shared.actions import Close, SendFrame, WakeAt
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


@dataclass(frozen=True, slots=True)
class Drop:
    """Abort the transport with no close frame; ``detail`` is for the log line."""

    detail: str


Action = SendFrame | Close | Drop | WakeAt
Actions = tuple[Action, ...]
NO_ACTIONS: Actions = ()

# docs/protocol.md, section 4.1: an agent sends its hello within this long of the upgrade.
HELLO_TIMEOUT_S = 10.0
# Error.detail is at most 1,024 characters (docs/protocol.md, section 5.4).
MAX_ERROR_DETAIL = 1024


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
        "_acks",
        "_admit",
        "_decode",
        "_hello_deadline",
        "_pings",
        "_seq_guard",
        "_seq_ok",
        "hello_timeout_s",
        "phase",
        "port",
    )

    def __init__(
        self,
        port: IngestPort,
        *,
        now: float,
        decoder: FrameDecoder | None = None,
        hello_timeout_s: float = HELLO_TIMEOUT_S,
        ack_interval_s: float = ACK_INTERVAL_S,
    ) -> None:
        """``decoder`` may be shared by every session of one event loop (the shell shares one)."""
        self.port, self.phase = port, Phase.AWAIT_HELLO
        self._decode = (decoder if decoder is not None else FrameDecoder(INGEST_LIMITS)).decode
        self._acks = AckPacer(ack_interval_s)
        self.hello_timeout_s, self._hello_deadline = hello_timeout_s, now + hello_timeout_s
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
        return self._acks.heartbeat(ack_seq, now)

    def tick(self, now: float) -> Actions:
        """A wake-up: refuse a late hello, or send the ack an open window is due."""
        if self.phase is Phase.AWAIT_HELLO:
            if now < self._hello_deadline:
                return (WakeAt(self._hello_deadline),)
            detail = f"expected a hello within {self.hello_timeout_s:g} s, got nothing"
            return self._refuse(ProtocolError(ErrorReason.HELLO_TIMEOUT, detail), now)
        if self.phase is Phase.CLOSED:
            return NO_ACTIONS
        return self._acks.tick(now)

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
        return self._acks.hello(ack_seq, hello.ack_every, hello.interval_s)

    def _refuse(self, exc: ProtocolError, now: float) -> Actions:
        """An Error frame and the reason's close code; the cache hears the connection ended."""
        if self.phase is Phase.STREAMING:
            self.port.closed(False, now)
        self.phase = Phase.CLOSED
        reason = exc.reason.value
        error = encode(Error(reason=reason, detail=exc.detail[:MAX_ERROR_DETAIL]))
        return (SendFrame(error), Close(int(CLOSE_CODE_FOR_REASON[exc.reason]), reason, exc.detail))
