"""The ingest shell's fast path: binary frames taken in the transport's callback, with no task switch per frame.

aiohttp's websocket parser runs inside the transport's ``data_received`` and queues each
message it completes; ``receive()`` then wakes the handler's task once per message, through a
future, and the task goes back to sleep in a new ``receive()``. At 10,000 agents at 1 Hz that
round trip was about a tenth of the collector's CPU (bench/e2e.py, py-spy), for a frame whose
handling never waits in most cases (four heartbeats in five need no ack).

``FrameTap`` puts a ``Tap`` in front of the transport's protocol (asyncio's public
``Transport.set_protocol``; every call is passed on unchanged). While the handler is parked in
``park()``, the tap's callback takes each binary frame aiohttp queued (``aiohttp_private``) and
hands it to the connection's ``frame`` function, which feeds the session; a ``WakeAt`` is armed
and an ack that cannot wait is sent at once (``send_now``). Anything else wakes ``park()``, and
frames behind it stay in aiohttp's queue for ``receive()``, so nothing is reordered: a ping, a
close, an error or the end of the stream; an action that may await (a send over the low-water
mark, a close, a drop); a pause for the replay pace; a bug of ours.

Not here: the protocol rules (``collector.ingest_session``) and executing actions (``collector.ingest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from collector.aiohttp_private import queued, queued_binary, take_queued
from collector.ingest_session import NO_ACTIONS, Actions, IngestSession, Phase, SendFrame, WakeAt

# Below asyncio's default low-water mark (64 KiB / 4) a transport is never paused, so an ack cannot block.
ACK_FAST_PATH_BYTES = 16 * 1024
# What a frame left for the handler's task: its actions and the replay pause after it.
Left = tuple[Actions, float]
_STREAMING = Phase.STREAMING


def send_now(ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, data: bytes) -> bool:
    """Send one binary frame at once when it cannot wait; False when the caller must await it (under a timeout).

    Below the low-water mark the transport is not paused and a ~20-byte frame cannot pause it,
    so ``send_bytes`` writes and returns without awaiting: it runs to its end in one step here,
    with no task and no timeout (an asyncio.timeout costs a timer per ack). The acks' hot path.
    A peer gone meanwhile (aiohttp's ClientConnectionResetError) counts as sent: the end of the
    stream ends the connection's loop.
    """
    if not isinstance(transport, asyncio.WriteTransport) or transport.get_write_buffer_size() >= ACK_FAST_PATH_BYTES:
        return False
    step = ws.send_bytes(data)
    try:
        step.send(None)
    except StopIteration:
        return True
    except ConnectionError:
        return True
    step.close()
    raise RuntimeError("expected a send below the low-water mark to finish at once, got one that waits")


class Tap(asyncio.Protocol):
    """Passes every protocol call to ``inner``; after received data and a lost connection, calls ``after``."""

    __slots__ = ("_after", "_inner", "_transport")

    def __init__(self, transport: asyncio.BaseTransport, inner: asyncio.Protocol, after: Callable[[], None]) -> None:
        self._transport = transport
        self._inner = inner
        self._after = after

    @classmethod
    def install(cls, transport: asyncio.BaseTransport, after: Callable[[], None]) -> Tap | None:
        """Tap ``transport``'s protocol; None if it has none we can pass calls to (then nothing changed)."""
        inner = transport.get_protocol()
        if not isinstance(inner, asyncio.Protocol) or isinstance(inner, asyncio.BufferedProtocol):
            return None
        tap = cls(transport, inner, after)
        transport.set_protocol(tap)
        return tap

    def remove(self) -> None:
        """Put the tapped protocol back (if the tap is still the transport's)."""
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._inner)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)
        self._after()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)
        self._after()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class FrameTap:
    """One ingest connection's fast path; see the module docstring."""

    __slots__ = ("_arm", "_error", "_frame", "_kick", "_left", "_send_now", "_session", "_tap", "_ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        session: IngestSession,
        frame: Callable[[bytes | str], Left],
        arm: Callable[[float], None],
        send_now: Callable[[bytes], bool],
    ) -> None:
        """``frame`` handles one data frame (the shell's, shared with its ``receive()`` path); ``arm`` sets a
        WakeAt; ``send_now`` sends a frame if that cannot wait, else says False (the task sends it).
        """
        self._ws = ws
        self._session = session
        self._frame = frame
        self._arm = arm
        self._send_now = send_now
        self._tap: Tap | None = None
        self._kick: asyncio.Future[None] | None = None
        self._left: Left | None = None
        self._error: Exception | None = None

    def install(self, transport: asyncio.BaseTransport) -> bool:
        """Tap ``transport``; False if it cannot be (the shell then only uses ``receive()``)."""
        self._tap = Tap.install(transport, self._on_data)
        return self._tap is not None

    def remove(self) -> None:
        """Untap the transport (when the connection's handler ends)."""
        if self._tap is not None:
            self._tap.remove()
            self._tap = None

    def parkable(self) -> bool:
        """Whether the handler may park now: tapped, streaming, open, and nothing queued for ``receive()``."""
        return (
            self._tap is not None and self._session.phase is _STREAMING and not self._ws.closed and not queued(self._ws)
        )

    async def park(self) -> Left | None:
        """Wait while the callback takes frames; then what the last one left for the task, if anything."""
        kick = self._kick = asyncio.get_running_loop().create_future()
        try:
            await kick
        finally:
            self._kick = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        left, self._left = self._left, None
        return left

    def _on_data(self) -> None:
        kick = self._kick
        if kick is None or kick.done():
            return  # the handler is not parked: it reads the queue itself, in order
        ws, session = self._ws, self._session
        try:
            while session.phase is _STREAMING and not ws.closed and queued_binary(ws):
                actions, delay = self._frame(take_queued(ws).data)
                if actions and not self._inline(actions):
                    self._left = (actions, delay)
                    break
                if delay:
                    self._left = (NO_ACTIONS, delay)
                    break
        except Exception as exc:  # noqa: BLE001 - the handler closes this connection with 1011 (its _fail)
            self._error = exc
        if (
            self._left is not None
            or self._error is not None
            or session.phase is not _STREAMING
            or ws.closed
            or queued(ws)
        ):
            kick.set_result(None)

    def _inline(self, actions: Actions) -> bool:
        """Run a lone WakeAt, or a lone frame to send that cannot wait (an ack), here; False for anything else."""
        if len(actions) != 1:
            return False
        action = actions[0]
        if type(action) is WakeAt:
            self._arm(action.at)
            return True
        return type(action) is SendFrame and self._send_now(action.data)
