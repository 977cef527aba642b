"""The viewer's network boundary: ``CollectorLink``, one QObject with typed signals.

Network I/O runs in a background thread with its own asyncio loop and an aiohttp
client, so nothing on the UI thread ever blocks on the network. The thread decodes
every frame (``shared.codec.decode`` with ``COLLECTOR_LIMITS``), merges updates
latest-per-node (``viewer.batching``) and about every 100 ms hands ONE batch to the UI
thread through a queued signal. At most one batch is in flight: while the UI thread
is busy, updates keep merging in the network thread instead of piling up in Qt's
event queue.

Why this design, and not QtWebSockets on the UI thread: issue #5's prototypes measured
both; decoding here keeps that work (~5 ms per 225-node update) off the UI thread.
bench/viewer_stall.py measures the result end to end.

Not here: widgets or models (signals carry plain data; only the UI thread applies it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from PyQt6.QtCore import QObject, Qt, pyqtBoundSignal, pyqtSignal, pyqtSlot

from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.errors import CloseCode, ErrorReason, ProtocolError
from shared.messages import Error, HistoryRequest, NodeHistory, Snapshot, Update
from viewer.backoff import Backoff
from viewer.batching import NodeBatch, PendingBatch

logger = logging.getLogger(__name__)

SUBSCRIBE_PATH: Final = "/api/v1/subscribe"
# ~10 UI frames per second: smooth enough for numbers, and what the collector batches at anyway.
FLUSH_INTERVAL_S: Final = 0.1
# Ping every 10 s (aiohttp's heartbeat=): a dead collector behind a NAT is noticed within ~20 s.
HEARTBEAT_S: Final = 10.0
# A collector that accepts TCP but never answers the upgrade is as good as down.
CONNECT_TIMEOUT_S: Final = 10.0
# Closing the window may wait this long for the network thread, never longer (issue #5).
STOP_TIMEOUT_S: Final = 2.0
# Peer detail strings are truncated in log lines to keep one line per error.
_LOG_DETAIL_CHARS: Final = 200


class Phase(StrEnum):
    """What the connection indicator shows."""

    CONNECTING = "connecting"  # never connected yet: "connecting..."
    CONNECTED = "connected"  # snapshot received, updates flowing
    RECONNECTING = "reconnecting"  # lost; "reconnecting in N s"
    AUTH_FAILED = "auth_failed"  # HTTP 401: slow retries only
    STOPPED = "stopped"  # the link was stopped


@dataclass(frozen=True, slots=True)
class LinkState:
    """One connection state, with the monotonic instant of the next attempt if one is scheduled."""

    phase: Phase
    detail: str = ""
    retry_at: float | None = None  # time.monotonic() instant


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Where to subscribe and how; built by ``viewer.cli`` from argv and environment."""

    collector_url: str
    token: str | None = None
    flush_interval_s: float = FLUSH_INTERVAL_S
    heartbeat_s: float = HEARTBEAT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S


def subscribe_url(collector_url: str) -> str:
    """Return the ``ws(s)://HOST:PORT/api/v1/subscribe`` URL for an ``http(s)://HOST:PORT`` collector URL.

    ``ws://``/``wss://`` are accepted too. Raises ValueError naming what is accepted.
    """
    parts = urlsplit(collector_url.strip())
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes:
        raise ValueError(f"expected an http:// or https:// URL, got {collector_url!r}")
    if not parts.hostname:
        raise ValueError(f"expected a host in the URL, got {collector_url!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"expected a port number in 1-65535, got {collector_url!r}") from exc
    if parts.query or parts.fragment or parts.path not in {"", "/"}:
        raise ValueError(f"expected only scheme://host:port, got {collector_url!r}")
    return urlunsplit((schemes[parts.scheme], parts.netloc, SUBSCRIBE_PATH, "", ""))


class _Ending(StrEnum):
    """Why one websocket session ended; decides the next state."""

    TRANSPORT = "transport"
    AUTH = "auth"
    CLOSED = "closed"


class _Bridge(QObject):
    """Signals emitted from the network thread; connected with QueuedConnection only."""

    batch = pyqtSignal(object)
    state = pyqtSignal(object)
    history = pyqtSignal(object)


class _NetworkWorker:
    """Everything that runs in the network thread: connect, decode, merge, flush, reconnect."""

    def __init__(
        self,
        config: LinkConfig,
        backoff: Backoff,
        bridge: _Bridge,
        ui_ready: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._url = subscribe_url(config.collector_url)
        self._backoff = backoff
        self._bridge = bridge
        self._ui_ready = ui_ready
        self._clock = clock
        self._pending = PendingBatch()
        self._last_flush_s = float("-inf")
        self._lock = threading.Lock()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._ever_connected = False
        self._auth_failed = False

    # -- called from the UI thread ------------------------------------------------

    def request_stop(self) -> None:
        """Cancel the network task from any thread; safe before the loop started or after it ended."""
        with self._lock:
            self._stop_requested = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self._loop.call_soon_threadsafe(self._task.cancel)

    def request_history(self, node_id: str) -> None:
        """Queue a HistoryRequest for the current (or next) connection."""
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
                ending, detail = await self._session(session)
                self._flush(force=True)
                if ending is _Ending.AUTH:
                    delay_s = self._backoff.auth_failed_delay_s()
                    phase = Phase.AUTH_FAILED
                else:
                    delay_s = self._backoff.next_delay_s()
                    phase = Phase.RECONNECTING if self._ever_connected else Phase.CONNECTING
                self._emit(self._bridge.state, LinkState(phase, detail, self._clock() + delay_s))
                await asyncio.sleep(delay_s)

    async def _session(self, session: aiohttp.ClientSession) -> tuple[_Ending, str]:
        if not self._auth_failed:
            phase = Phase.RECONNECTING if self._ever_connected else Phase.CONNECTING
            self._emit(self._bridge.state, LinkState(phase, f"connecting to {self._url}"))
        try:
            async with session.ws_connect(
                self._url,
                heartbeat=self._config.heartbeat_s,
                max_msg_size=COLLECTOR_LIMITS.max_frame_bytes,
            ) as ws:
                self._auth_failed = False
                return await self._serve(ws)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:  # HTTP Unauthorized, answered before the upgrade
                self._auth_failed = True
                detail = (
                    "the collector rejected the viewer token (HTTP 401)"
                    if self._config.token
                    else "the collector requires a viewer token (HTTP 401): pass --token or set NODEWATCH_TOKEN"
                )
                logger.warning("collector %s: auth failed: %s", self._url, detail)
                return _Ending.AUTH, detail
            logger.warning("collector %s: handshake failed: HTTP %s %s", self._url, exc.status, exc.message)
            return _Ending.TRANSPORT, f"HTTP {exc.status} {exc.message}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.info("collector %s: cannot connect: %.200s", self._url, exc)
            return _Ending.TRANSPORT, f"cannot connect: {exc!s:.{_LOG_DETAIL_CHARS}}"

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[_Ending, str]:
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

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[_Ending, str]:
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                await self._reject(ws, ProtocolError(ErrorReason.TEXT_FRAME, "expected binary frames, got text"))
                break
            if frame.type is not aiohttp.WSMsgType.BINARY:
                break
            try:
                message = decode(frame.data, COLLECTOR_LIMITS)
            except ProtocolError as exc:
                await self._reject(ws, exc)
                break
            if isinstance(message, Snapshot | Update):
                self._pending.add(message)
                if isinstance(message, Update) and self._clock() - self._last_flush_s >= self._config.flush_interval_s:
                    # Right after a decode: the UI works while this thread idles until the next
                    # message, instead of both wanting the GIL at once (bench/viewer_stall.py).
                    self._flush()
                if isinstance(message, Snapshot):
                    self._ever_connected = True
                    self._backoff.reset()
                    self._flush()  # show the fleet at once, not 100 ms later
                    self._emit(self._bridge.state, LinkState(Phase.CONNECTED, self._url))
            elif isinstance(message, NodeHistory):
                self._emit(self._bridge.history, message)
            elif isinstance(message, Error):
                logger.warning("collector %s: error %s: %r", self._url, message.reason, message.detail[:200])
            else:
                unexpected = ProtocolError(
                    ErrorReason.UNEXPECTED_MESSAGE, f"expected snapshot/update/history, got {message.type!r}"
                )
                await self._reject(ws, unexpected)
                break
        code = ws.close_code
        reason = _close_reason(code, ws.exception())
        logger.info("collector %s: connection closed: %s", self._url, reason)
        return _Ending.CLOSED, reason

    async def _reject(self, ws: aiohttp.ClientWebSocketResponse, exc: ProtocolError) -> None:
        logger.warning("collector %s: %s: %r", self._url, exc.reason.value, exc.detail[:_LOG_DETAIL_CHARS])
        await ws.close(code=exc.close_code, message=exc.reason.value.encode())

    async def _flush_periodically(self) -> None:
        """Fallback for when no message comes to trigger a flush (or the UI was still busy)."""
        while True:
            await asyncio.sleep(self._config.flush_interval_s / 2)
            if self._clock() - self._last_flush_s >= self._config.flush_interval_s:
                self._flush()

    async def _send_requests(self, ws: aiohttp.ClientWebSocketResponse, outbox: asyncio.Queue[str]) -> None:
        while True:
            node_id = await outbox.get()
            try:
                await ws.send_bytes(encode(HistoryRequest(node_id=node_id)))
            except (aiohttp.ClientError, OSError) as exc:  # the receive loop notices the close and reconnects
                logger.info("collector %s: history request for %s not sent: %r", self._url, node_id, exc)
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


def _close_reason(code: int | None, exc: BaseException | None) -> str:
    if exc is not None:
        return f"connection lost: {exc!s:.{_LOG_DETAIL_CHARS}}"
    if code is None:
        return "connection lost"
    try:
        name = CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = "unknown"
    return f"closed by collector: {code} ({name})"


class CollectorLink(QObject):
    """Subscribe to a collector and report what it says, as signals emitted on the UI thread.

    ``batch_ready(NodeBatch)``: merged changes to apply; ``state_changed(LinkState)``: for the
    connection indicator; ``history_ready(NodeHistory)``: the reply to ``request_history``.
    """

    batch_ready = pyqtSignal(NodeBatch)
    state_changed = pyqtSignal(LinkState)
    history_ready = pyqtSignal(NodeHistory)

    def __init__(self, config: LinkConfig, backoff: Backoff | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config
        self._backoff = backoff if backoff is not None else Backoff()
        self._bridge = _Bridge(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._bridge.batch.connect(self._on_batch, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._bridge.state.connect(self._on_state, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._bridge.history.connect(self._on_history, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._ui_ready = threading.Event()
        self._ui_ready.set()
        self._worker: _NetworkWorker | None = None
        self._thread: threading.Thread | None = None
        self._state = LinkState(Phase.CONNECTING, "not started")

    @property
    def state(self) -> LinkState:
        """The last state emitted."""
        return self._state

    def start(self) -> None:
        """Start the network thread; it connects, and reconnects until ``stop()``."""
        if self._thread is not None:
            raise RuntimeError("CollectorLink.start() called twice")
        self._worker = _NetworkWorker(self._config, self._backoff, self._bridge, self._ui_ready)
        self._thread = threading.Thread(target=self._worker.run, name="nodewatch-viewer-link", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Ask the network thread to stop and wait at most ``timeout_s``; True if it ended."""
        if self._worker is None or self._thread is None:
            return True
        self._worker.request_stop()
        self._thread.join(timeout_s)
        stopped = not self._thread.is_alive()
        if not stopped:
            logger.warning("viewer link: network thread still running after %.1f s; abandoning it", timeout_s)
        return stopped

    def request_history(self, node_id: str) -> None:
        """Ask the collector for ``node_id``'s full history; ``history_ready`` carries the answer."""
        if self._worker is not None:
            self._worker.request_history(node_id)

    @pyqtSlot(object)
    def _on_batch(self, batch: NodeBatch) -> None:
        try:
            self.batch_ready.emit(batch)
        finally:
            self._ui_ready.set()

    @pyqtSlot(object)
    def _on_state(self, state: LinkState) -> None:
        self._state = state
        self.state_changed.emit(state)

    @pyqtSlot(object)
    def _on_history(self, history: NodeHistory) -> None:
        self.history_ready.emit(history)
