"""The viewer link's network thread: connect, decode, merge, flush, reconnect.

``NetworkWorker.run`` is a thread target with its own asyncio loop and aiohttp client.
It decodes every frame (``viewer.framedecode``: the codec's checks with ``COLLECTOR_LIMITS``,
big updates validated in slices so the UI thread gets the GIL between them), merges
updates latest-per-node (``viewer.batching``) and hands at most one batch at a time to
the UI thread through ``Bridge``'s signals (queued connections only). A snapshot and its
parts (docs/protocol.md 4.2.1) go to the UI as one batch, so rows never vanish between them.
Every way a
session ends becomes a ``Failure`` in words (``viewer.linkstate``), and its least retry
delay comes from ``shared.retry``. Peer text in log lines is always ``%r``.

Not here: widgets or models; the UI side is ``viewer.link.CollectorLink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from PyQt6.QtCore import QObject, pyqtBoundSignal, pyqtSignal

from shared.codec import encode
from shared.errors import ErrorReason, ProtocolError
from shared.messages import Error, HistoryRequest, NodeHistory, Snapshot, Update
from viewer.alertwire import ALERTS_QUERY, decode_alert_frame
from viewer.backoff import Backoff
from viewer.batching import PendingBatch
from viewer.framedecode import decode_frame
from viewer.linkstate import (
    DETAIL_CHARS,
    Failure,
    LinkConfig,
    LinkState,
    Phase,
    close_failure,
    connect_failure,
    handshake_failure,
    subscribe_url,
)

logger = logging.getLogger("viewer.link")

# A snapshot is shown with its parts at the first message that is not a part (docs/protocol.md 4.2.1).
# A collector that sends nothing after them (one that predates alerts, a quiet fleet) would keep it
# hidden: so it is also shown once no frame came for SNAPSHOT_QUIET_S (the collector sends parts back
# to back, so a longer silence means they are over), and at most SNAPSHOT_PARTS_WAIT_S after it began.
SNAPSHOT_QUIET_S: Final = 0.3
SNAPSHOT_PARTS_WAIT_S: Final = 2.0


class Bridge(QObject):
    """Signals emitted from the network thread; connected with QueuedConnection only."""

    batch = pyqtSignal(object)
    state = pyqtSignal(object)
    history = pyqtSignal(object)
    alerts = pyqtSignal(object)  # a viewer.alertwire.AlertNews


class NetworkWorker:
    """Everything that runs in the network thread: connect, decode, merge, flush, reconnect."""

    def __init__(
        self,
        config: LinkConfig,
        backoff: Backoff,
        bridge: Bridge,
        ui_ready: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._url = subscribe_url(config.collector_url)
        self._host = urlsplit(self._url).hostname or ""
        self._backoff = backoff
        self._bridge = bridge
        self._ui_ready = ui_ready
        self._clock = clock
        self._pending = PendingBatch()
        self._last_flush_s = float("-inf")
        self._snapshot_since_s: float | None = None  # a snapshot arrived and its parts may follow
        self._last_frame_s = float("-inf")
        self._lock = threading.Lock()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[str | HistoryRequest] | None = None
        self._ever_connected = False
        self._first_attempt = True

    # -- called from the UI thread ------------------------------------------------

    def request_stop(self) -> None:
        """Cancel the network task from any thread; safe before the loop started or after it ended."""
        with self._lock:
            self._stop_requested = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self._loop.call_soon_threadsafe(self._task.cancel)

    def request_history(self, node_id: str | HistoryRequest) -> None:
        """Queue a HistoryRequest (a node id: its in-memory window) for the current connection."""
        with self._lock:
            if self._loop is not None and self._outbox is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._outbox.put_nowait, node_id)

    # -- the network thread ---------------------------------------------------------

    def run(self) -> None:
        """Thread target: run the asyncio loop until stopped."""
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self._main())
        self._emit(self._bridge.state, LinkState(Phase.STOPPED))

    async def _main(self) -> None:
        with self._lock:
            if self._stop_requested:
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._outbox = asyncio.Queue()
        try:
            await self._reconnect_forever()
        finally:
            with self._lock:
                self._loop = None
                self._task = None

    async def _reconnect_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=self._config.connect_timeout_s)
        headers = {"Authorization": f"Bearer {self._config.token}"} if self._config.token else {}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                failure = await self._session(session)
                self._snapshot_since_s = None
                self._flush(force=True)
                if failure.auth:
                    delay_s = max(failure.min_delay_s, self._backoff.auth_failed_delay_s())
                    phase = Phase.AUTH_FAILED
                else:
                    delay_s = max(failure.min_delay_s, self._backoff.next_delay_s())
                    phase = Phase.RECONNECTING if self._ever_connected else Phase.CONNECTING
                self._emit(self._bridge.state, LinkState(phase, failure.words, self._clock() + delay_s))
                await asyncio.sleep(delay_s)

    async def _session(self, session: aiohttp.ClientSession) -> Failure:
        if self._first_attempt:  # later attempts keep showing the last failure, in words, until one works
            self._first_attempt = False
            self._emit(self._bridge.state, LinkState(Phase.CONNECTING, f"connecting to {self._url}"))
        try:
            async with session.ws_connect(
                self._url + ALERTS_QUERY,
                heartbeat=self._config.heartbeat_s,
                max_msg_size=self._config.max_frame_bytes,
            ) as ws:
                return await self._serve(ws)
        except aiohttp.WSServerHandshakeError as exc:
            failure = handshake_failure(exc.status, exc.message, has_token=self._config.token is not None)
            logger.warning(
                "collector %s: handshake failed: HTTP %s %r", self._url, exc.status, exc.message[:DETAIL_CHARS]
            )
            return failure
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.info("collector %s: cannot connect: %r", self._url, str(exc)[:DETAIL_CHARS])
            return connect_failure(exc, self._host)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> Failure:
        assert self._outbox is not None
        while not self._outbox.empty():  # requests made while disconnected are re-made after the snapshot
            self._outbox.get_nowait()
        async with asyncio.TaskGroup() as tasks:
            flusher = tasks.create_task(self._flush_periodically())
            sender = tasks.create_task(self._send_requests(ws, self._outbox))
            try:
                ending = await self._receive(ws)
            finally:
                flusher.cancel()
                sender.cancel()
        return ending

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> Failure:
        error: BaseException | None = None
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                await self._reject(ws, ProtocolError(ErrorReason.TEXT_FRAME, "expected binary frames, got text"))
                break
            if frame.type is not aiohttp.WSMsgType.BINARY:
                if frame.type is aiohttp.WSMsgType.ERROR and isinstance(frame.data, BaseException):
                    error = frame.data  # e.g. a frame over max_msg_size: aiohttp closes with 1009
                break
            bad = self._take(frame.data)
            if bad is not None:
                await self._reject(ws, bad)
                break
        failure = close_failure(ws.close_code, ws.exception() or error)
        logger.info("collector %s: connection closed: %r", self._url, failure.words)
        return failure

    def _take(self, data: bytes) -> ProtocolError | None:
        """Act on one binary frame; the error to close with if it is bad."""
        self._last_frame_s = self._clock()
        try:
            message = decode_frame(data)
        except ProtocolError as exc:
            try:  # an alert message (docs/protocol.md 5.11, 5.12), or a bad frame
                news = decode_alert_frame(data, exc)
            except ProtocolError as bad:
                return bad
            if self._snapshot_since_s is not None:
                self._end_snapshot()  # the alerts message follows the last part (docs/protocol.md 4.2.1)
            self._emit(self._bridge.alerts, news)
            return None
        if isinstance(message, Snapshot):
            self._pending.add(message)
            self._snapshot_since_s = self._clock()  # flushed with its parts, at the first other message
            self._ever_connected = True
            self._backoff.reset()
            return None
        if self._snapshot_since_s is not None and not (isinstance(message, Update) and is_part(message)):
            self._end_snapshot()  # the snapshot is complete: show the whole fleet at once
        if isinstance(message, Update):
            self._pending.add(message)
            if self._snapshot_since_s is None and self._clock() - self._last_flush_s >= self._config.flush_interval_s:
                # Right after a decode: the UI works while this thread idles until the next
                # message, instead of both wanting the GIL at once (bench/viewer_stall.py).
                self._flush()
        elif isinstance(message, NodeHistory):
            self._emit(self._bridge.history, message)
        elif isinstance(message, Error):
            logger.warning(
                "collector %s: error %r: %r", self._url, message.reason[:DETAIL_CHARS], message.detail[:DETAIL_CHARS]
            )
        else:
            return ProtocolError(
                ErrorReason.UNEXPECTED_MESSAGE, f"expected snapshot/update/history, got {message.type!r}"
            )
        return None

    async def _reject(self, ws: aiohttp.ClientWebSocketResponse, exc: ProtocolError) -> None:
        logger.warning("collector %s: %s: %r", self._url, exc.reason.value, exc.detail[:DETAIL_CHARS])
        await ws.close(code=exc.close_code, message=exc.reason.value.encode())

    async def _flush_periodically(self) -> None:
        """Fallback for when no message comes to trigger a flush (or the UI was still busy)."""
        while True:
            await asyncio.sleep(self._config.flush_interval_s / 2)
            now_s, since_s = self._clock(), self._snapshot_since_s
            if since_s is not None:  # parts may still come: wait for them, but not forever
                if now_s - self._last_frame_s >= SNAPSHOT_QUIET_S or now_s - since_s >= SNAPSHOT_PARTS_WAIT_S:
                    self._end_snapshot()
            elif now_s - self._last_flush_s >= self._config.flush_interval_s:
                self._flush()

    def _end_snapshot(self) -> None:
        """The snapshot and its parts are all in: hand them to the UI as one batch, then say connected."""
        self._snapshot_since_s = None
        self._flush()
        self._emit(self._bridge.state, LinkState(Phase.CONNECTED, self._url))

    async def _send_requests(
        self, ws: aiohttp.ClientWebSocketResponse, outbox: asyncio.Queue[str | HistoryRequest]
    ) -> None:
        while True:
            wanted = await outbox.get()
            request = wanted if isinstance(wanted, HistoryRequest) else HistoryRequest(node_id=wanted)
            try:
                await ws.send_bytes(encode(request))
            except (aiohttp.ClientError, OSError) as exc:  # the receive loop notices the close and reconnects
                logger.info("collector %s: history request for %s not sent: %r", self._url, request.node_id, exc)
                return

    def _flush(self, *, force: bool = False) -> None:
        """Hand the pending batch to the UI unless one is still in flight (``force``: connection ended)."""
        if not self._pending or not (force or self._ui_ready.is_set()):
            return
        batch = self._pending.take()
        self._last_flush_s = self._clock()
        self._ui_ready.clear()
        self._emit(self._bridge.batch, batch)

    def _emit(self, signal: pyqtBoundSignal, value: object) -> None:
        # If a stop timed out, the UI side may already be gone; that is the only expected error.
        with contextlib.suppress(RuntimeError):
            signal.emit(value)


def is_part(update: Update) -> bool:
    """Whether ``update`` is a snapshot part: every entry carries ``history`` (docs/protocol.md 4.2.1)."""
    return all(entry.history is not None for entry in update.nodes)
