"""The pusher: the aiohttp shell around ``AgentSession``, one websocket to the collector at a time.

All protocol decisions (hello, the hello's ack and its deadline, replay,
cumulative acks, error frames, closes, the budget for a hostile collector,
what a close means for the retry) are made by ``agent.session``; this module
only does the I/O they ask for: connect, send, close, sleep until the next
event or ``WakeAt``, and back off between attempts (``agent.backoff``). Not
here: sampling or encoding heartbeats; the runner appends encoded frames to
the backlog and calls ``notify()``.

One task drives the session; it waits for whichever comes first: a received
message (one ``ws.receive()`` task, never cancelled mid-conversation, since
cancelling it breaks the websocket), a new sample, the stop event, or the
session's timer. aiohttp's ``heartbeat=`` pings after that much silence and
gives up when no pong comes within half of it, so a collector that stalls is
noticed within ~1.5x. ``autoping`` is off so that pings reach the session,
which answers them within its budget (a ping flood is closed, not served).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import aiohttp

from agent.backlog import Backlog
from agent.backoff import Backoff, Outcome, http_outcome
from agent.session import (
    FINAL_ACK_TIMEOUT_S,
    Action,
    AgentSession,
    Close,
    HelloAcked,
    Log,
    SendFrame,
    SendPong,
    SessionCounters,
    WakeAt,
)
from agent.wire import MAX_INBOUND_BYTES

__all__ = ["Outcome", "Pusher"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0  # wait this long for the collector's close reply: shutdown must finish within 2 s
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 section 5.5: a control frame's payload is at most 125 bytes, 2 are the code


class Pusher:
    """Owns the connection to the collector and replays the backlog over it."""

    def __init__(
        self,
        url: str,
        backlog: Backlog,
        make_hello: Callable[[int], bytes],
        *,
        token: str | None = None,
        ws_heartbeat_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        hello_ack_timeout_s: float = 10.0,
        final_ack_timeout_s: float = FINAL_ACK_TIMEOUT_S,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        self.url = url
        self.backlog = backlog
        self.backoff = backoff if backoff is not None else Backoff()
        self.session = AgentSession(
            backlog,
            make_hello,
            peer=url,
            hello_ack_timeout_s=hello_ack_timeout_s,
            final_ack_timeout_s=final_ack_timeout_s,
        )
        self.connections = 0
        self.last_outcome: Outcome | None = None
        self._token = token
        self._ws_heartbeat_s = ws_heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock
        self._on_retry = on_retry
        self._new_frames = asyncio.Event()
        self._logged_failure: str | None = None

    @property
    def counters(self) -> SessionCounters:
        """What the session counted: acks, refused acks, floods, suppressed log lines..."""
        return self.session.counters

    def notify(self) -> None:
        """Tell the writer that the backlog has a new frame."""
        self._new_frames.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, push, reconnect with backoff, until ``stop`` is set; then close cleanly."""
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                outcome = await self._attempt(session, stop)
                self.last_outcome = outcome
                if stop.is_set():
                    break
                delay_s = self.backoff.failure(self._clock(), refused=outcome.refused, floor_s=outcome.min_delay_s)
                self._log_failure(outcome, delay_s)
                if self._on_retry is not None:
                    self._on_retry(delay_s, outcome)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await stop.wait()
        log.info("agent stopped; %d sample(s) were not acked", len(self.backlog))

    def _log_failure(self, outcome: Outcome, delay_s: float) -> None:
        """One line per state change: the first failure after a connection, or a new kind of failure."""
        if outcome.was_connected or outcome.reason != self._logged_failure:
            self._logged_failure = outcome.reason
            log.warning(
                "not connected to %s: %s; retrying in %.1f s%s",
                self.url,
                outcome.reason,
                delay_s,
                self._why_waiting(outcome),
            )
        else:
            log.debug("still not connected to %s: %s; retrying in %.1f s", self.url, outcome.reason, delay_s)

    def _why_waiting(self, outcome: Outcome) -> str:
        if outcome.refused:
            return " (the collector refused us: backing off up to 5 min)"
        if not outcome.busy:
            return ""
        floor_s = self.backoff.last_floor_s
        if outcome.retry_after_s is not None and floor_s > 0:
            return f" (collector at capacity: Retry-After {floor_s:g} s)"
        if floor_s > 0:
            return f" (collector at capacity: waiting at least {floor_s:g} s)"
        return " (collector at capacity)"

    async def _attempt(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> Outcome:
        opener = asyncio.ensure_future(self._open(session))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({opener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not opener.done():
                opener.cancel()
            await asyncio.gather(opener, stopper, return_exceptions=True)
        if opener.cancelled():
            return Outcome("stopped while connecting")
        opened = opener.result()
        if isinstance(opened, Outcome):
            return opened
        try:
            return await self._converse(opened, stop)
        finally:
            if not opened.closed:
                await opened.close()

    async def _open(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse | Outcome:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                return await session.ws_connect(
                    self.url,
                    headers=headers,
                    heartbeat=self._ws_heartbeat_s,
                    max_msg_size=MAX_INBOUND_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_S),
                    autoping=False,
                )
        except aiohttp.WSServerHandshakeError as exc:
            return http_outcome(exc.status, exc.message, exc.headers.get("Retry-After") if exc.headers else None)
        except TimeoutError:
            return Outcome(f"no answer within {self._connect_timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(f"{exc!r:.200}")

    async def _converse(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> Outcome:
        """Drive the session over one open websocket until it returns an ``Outcome``."""
        session = self.session
        receiver: asyncio.Future[aiohttp.WSMessage] | None = None
        sampler: asyncio.Future[Literal[True]] | None = None
        stopper = asyncio.ensure_future(stop.wait())
        stopping = False
        actions = session.connected(self._clock())
        try:
            while True:
                outcome, wake_at = await self._execute(ws, actions)
                if outcome is not None:
                    return outcome
                if receiver is None:
                    receiver = asyncio.ensure_future(ws.receive())
                if sampler is None:
                    sampler = asyncio.ensure_future(self._new_frames.wait())
                waiting: set[asyncio.Future[Any]] = {receiver, sampler} if stopping else {receiver, sampler, stopper}
                timeout_s = None if wake_at is None else max(0.0, wake_at - self._clock())
                done, _ = await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
                now = self._clock()
                if not stopping and stopper in done:
                    stopping = True
                    actions = session.stop(now)
                elif receiver in done:
                    message, receiver = receiver.result(), None
                    actions = self._feed(ws, message, now)
                elif sampler in done:
                    sampler = None
                    self._new_frames.clear()
                    actions = session.sample_added(now)
                else:
                    actions = []
                if wake_at is not None and now >= wake_at and session.is_open:  # due, even under a stream of frames
                    actions += session.tick(now)
        finally:
            await _cancel(receiver, sampler, stopper)
            if session.is_open:  # cancelled from outside: the next connection starts from a clean state
                session.connection_lost("abandoned", self._clock())

    def _feed(self, ws: aiohttp.ClientWebSocketResponse, message: aiohttp.WSMessage, now: float) -> list[Action]:
        """Hand one received websocket message to the session."""
        session = self.session
        match message.type:
            case aiohttp.WSMsgType.BINARY:
                actions = session.frame_received(message.data, now)
            case aiohttp.WSMsgType.TEXT:
                actions = session.text_received(message.data, now)
            case aiohttp.WSMsgType.PING:
                actions = session.ping_received(message.data, now)
            case aiohttp.WSMsgType.PONG:
                actions = session.pong_received(now)
            case aiohttp.WSMsgType.CLOSE:  # the code the collector sent; ws.close_code is 1006 if our reply failed
                actions = session.close_received(int(message.data), message.extra or "", now)
            case aiohttp.WSMsgType.ERROR:
                actions = session.connection_lost(f"connection lost: {ws.exception()!r:.200}", now)
            case _:  # CLOSING or CLOSED
                actions = session.close_received(ws.close_code, "", now)
        return actions

    async def _execute(
        self, ws: aiohttp.ClientWebSocketResponse, actions: list[Action]
    ) -> tuple[Outcome | None, float | None]:
        """Do what the session asked, in order; return its outcome (if the connection ended) and its timer."""
        wake_at: float | None = None
        for action in actions:
            if isinstance(action, SendFrame | SendPong):
                try:
                    if isinstance(action, SendFrame):
                        await ws.send_bytes(action.data)
                    else:
                        await ws.pong(action.data)
                except (aiohttp.ClientError, OSError) as exc:
                    lost = self.session.connection_lost(f"send failed: {exc!r:.200}", self._clock())
                    return await self._execute(ws, lost)
            elif isinstance(action, Close):
                await ws.close(code=action.code, message=action.reason.encode()[:MAX_CLOSE_REASON_BYTES])
            elif isinstance(action, WakeAt):
                wake_at = action.at
            elif isinstance(action, Log):
                log.log(action.level, action.msg, *action.args)
            elif isinstance(action, HelloAcked):
                self.connections += 1
                self.backoff.connected(self._clock())
                self._logged_failure = None
            else:
                return action, None
        return None, wake_at


async def _cancel(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks that exist and wait for them to finish."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
