"""The pusher: one websocket to the collector, hello first, then the backlog, then live heartbeats.

A thin aiohttp shell around pure parts: ``Backlog`` (what is unacked),
``Backoff`` (when to retry), ``agent.wire`` (frames). Not here: sampling or encoding heartbeats; the
runner appends encoded frames to the backlog and calls ``notify()``.

Per connection: send ``Hello``; the collector's first ``Ack(seq=N)`` says
what it already holds, so the backlog is trimmed to N and everything after
N is replayed oldest first; then live frames follow. A read loop always runs:
it takes acks (cumulative: they trim the backlog), logs ``Error`` frames,
answers pings (aiohttp's autoping) and sees the close frame. aiohttp's
``heartbeat=`` pings after that much silence and gives up when no pong comes
within half of it, so a collector that stalls is noticed within ~1.5x.

A collector at capacity (HTTP 503 before the upgrade, or close 4503 after the
hello) is an ordinary failure: samples wait in the backlog and the normal
backoff applies, with a 503's ``Retry-After`` as the least delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from agent.backlog import Backlog
from agent.backoff import Backoff, retry_after_s
from agent.wire import MAX_INBOUND_BYTES, InboundAck, InboundError, decode_inbound
from shared.errors import CloseCode, ProtocolError

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0  # wait this long for the collector's close reply: shutdown must finish within 2 s
# Closes that the collector will repeat if we retry soon: back off long (docs/protocol.md).
REFUSING_CLOSE_CODES = frozenset({int(CloseCode.POLICY_VIOLATION)})
REFUSING_HTTP_STATUSES = frozenset({401, 403})
# Statuses whose Retry-After we take as the least delay before the next attempt.
BUSY_HTTP_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection attempt ended, for the backoff and the log."""

    reason: str
    refused: bool = False
    close_code: int | None = None
    was_connected: bool = False
    retry_after_s: float | None = None  # the collector's Retry-After on a 503 or 429, if it sent a usable one
    busy: bool = False  # the collector is at capacity: HTTP 503/429 or close 4503


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
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        self.url = url
        self.backlog = backlog
        self.backoff = backoff if backoff is not None else Backoff()
        self.connections = 0
        self.last_outcome: Outcome | None = None
        self._make_hello = make_hello
        self._token = token
        self._ws_heartbeat_s = ws_heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._hello_ack_timeout_s = hello_ack_timeout_s
        self._clock = clock
        self._on_retry = on_retry
        self._new_frames = asyncio.Event()
        self._logged_failure: str | None = None

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
                delay_s = self.backoff.failure(self._clock(), refused=outcome.refused, floor_s=outcome.retry_after_s)
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
        if floor_s > 0:
            return f" (collector at capacity: Retry-After {floor_s:g} s)"
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
                    autoping=True,
                )
        except aiohttp.WSServerHandshakeError as exc:
            busy = exc.status in BUSY_HTTP_STATUSES
            return Outcome(
                f"HTTP {exc.status} {exc.message}"[:200],
                refused=exc.status in REFUSING_HTTP_STATUSES,
                retry_after_s=retry_after_s(exc.headers.get("Retry-After")) if busy and exc.headers else None,
                busy=busy,
            )
        except TimeoutError:
            return Outcome(f"no answer within {self._connect_timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(f"{type(exc).__name__}: {exc}"[:200])

    async def _converse(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> Outcome:
        held_seq: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await ws.send_bytes(self._make_hello(self.backlog.dropped))
        reader = asyncio.ensure_future(self._read(ws, held_seq))
        writer = asyncio.ensure_future(self._write(ws, held_seq))
        stopper = asyncio.ensure_future(stop.wait())
        tasks = {reader, writer, stopper}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stopper.done():
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
                await ws.close(code=CloseCode.NORMAL, message=b"agent stopping")
                log.info("closed the connection to %s (agent stopping)", self.url)
                return Outcome("stopped", close_code=int(CloseCode.NORMAL), was_connected=True)
            if writer.done() and not writer.cancelled() and writer.exception() is not None:
                exc = writer.exception()
                return Outcome(
                    "collector did not ack the hello in time"
                    if isinstance(exc, TimeoutError)
                    else f"send failed: {exc!r:.200}",
                    was_connected=held_seq.done(),
                )
            await asyncio.wait({reader})
            return reader.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, held_seq: asyncio.Future[int]) -> None:
        async with asyncio.timeout(self._hello_ack_timeout_s):
            sent = await asyncio.shield(held_seq)
        while True:
            self._new_frames.clear()
            for seq, frame in self.backlog.after(sent):
                await ws.send_bytes(frame)
                sent = seq
            await self._new_frames.wait()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, held_seq: asyncio.Future[int]) -> Outcome:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                bad = self._handle_frame(msg.data, held_seq)
                if bad is not None:
                    await ws.close(code=CloseCode.POLICY_VIOLATION, message=bad.reason.value.encode())
                    return Outcome(f"bad frame from collector: {bad.detail:.200}", was_connected=held_seq.done())
            elif msg.type == aiohttp.WSMsgType.TEXT:
                log.warning("collector %s sent a text frame, expected binary: %r", self.url, msg.data[:100])
            elif msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}:
                code = ws.close_code
                extra = msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else None
                return Outcome(
                    f"closed by the collector (code {code}{f', {extra!r:.100}' if extra else ''})",
                    refused=code in REFUSING_CLOSE_CODES,
                    close_code=code,
                    busy=code == CloseCode.CAPACITY_REACHED,
                    was_connected=held_seq.done(),
                )
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return Outcome(f"connection lost: {ws.exception()!r:.200}", was_connected=held_seq.done())

    def _handle_frame(self, data: bytes, held_seq: asyncio.Future[int]) -> ProtocolError | None:
        try:
            message = decode_inbound(data)
        except ProtocolError as exc:
            log.warning("collector %s sent a bad frame (%s): %r", self.url, exc.reason, data[:64])
            return exc
        if isinstance(message, InboundAck):
            self.backlog.ack(message.seq)
            if not held_seq.done():
                held_seq.set_result(message.seq)
                self.connections += 1
                self.backoff.connected(self._clock())
                self._logged_failure = None
                log.info(
                    "connected to %s; collector holds seq %d, %d sample(s) to send",
                    self.url,
                    message.seq,
                    len(self.backlog),
                )
        elif isinstance(message, InboundError):
            log.warning("collector %s reported %s: %r", self.url, message.reason, message.detail[:200])
        return None
