"""A minimal REAL aiohttp subscribe endpoint, run in its own thread with its own loop.

Qt tests run Qt's event loop on the main thread, so the server cannot share it: it
gets a thread. It serves a Snapshot on connect, pushes whatever a test hands it,
answers HistoryRequest with NodeHistory, and can demand a bearer token (401 before
the upgrade). It counts every handshake attempt so tests can spot retry storms.
It is not the collector: no liveness, no ingest.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from shared.codec import SUBSCRIBE_REQUEST_LIMITS, decode, encode
from shared.messages import History, HistoryRequest, NodeHistory, Snapshot, Update
from tests.support.messages import history

_START_TIMEOUT_S = 5.0


class SubscribeServer:
    """Serve /api/v1/subscribe on 127.0.0.1 from a background thread."""

    def __init__(
        self, snapshot: Callable[[], Snapshot], token: str | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.snapshot = snapshot
        self.token = token
        self.tls = tls
        self.attempts = 0
        self.history_requests: list[str] = []
        self.requests: list[HistoryRequest] = []  # every request in full, ranged ones too
        self.client_close_codes: list[int | None] = []
        self.histories: dict[str, History] = {}
        self.port = 0
        self._clients: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-subscribe-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self._thread.start()

    @property
    def url(self) -> str:
        """The collector URL a viewer is given."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def client_count(self) -> int:
        """Subscribers connected right now."""
        return len(self._clients)

    def start(self) -> str:
        """Listen (on the previous port after a stop, so a viewer can reconnect) and return the URL."""
        self._call(self._start())
        return self.url

    def stop(self) -> None:
        """Close every subscriber with 1001 and stop listening; the thread stays for a restart."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop and end the server thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT_S)
        self._loop.close()

    def push(self, message: Snapshot | Update) -> None:
        """Send ``message`` to every subscriber."""
        self.push_raw(encode(message))

    def push_raw(self, data: bytes) -> None:
        """Send raw bytes to every subscriber (to test bad frames)."""
        self._call(self._broadcast(data))

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT_S)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/subscribe", self._subscribe)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        for ws in list(self._clients):
            await ws.close(code=1001, message=b"going away")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _broadcast(self, data: bytes) -> None:
        for ws in list(self._clients):
            await ws.send_bytes(data)

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized", "detail": "missing or wrong viewer token"}, status=401)
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        self._clients.add(ws)
        try:
            await ws.send_bytes(encode(self.snapshot()))
            async for frame in ws:
                if frame.type is not WSMsgType.BINARY:
                    continue
                message = decode(frame.data, SUBSCRIBE_REQUEST_LIMITS)
                if isinstance(message, HistoryRequest):
                    self.history_requests.append(message.node_id)
                    self.requests.append(message)
                    full = self.histories.get(message.node_id, history(points=30))
                    await ws.send_bytes(encode(NodeHistory(node_id=message.node_id, history=full)))
        finally:
            self._clients.discard(ws)
            self.client_close_codes.append(ws.close_code)
        return ws


class PlainWebServer:
    """An aiohttp server on 127.0.0.1 with no /api/v1/subscribe route: a web server that is not a collector."""

    def __enter__(self) -> str:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-plain-web", daemon=True)
        self._thread.start()
        app = web.Application()
        app.router.add_get("/", self._hello)
        self._runner = web.AppRunner(app)
        self._call(self._runner.setup())
        self._call(web.TCPSite(self._runner, "127.0.0.1", 0).start())
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def __exit__(self, *_exc: object) -> None:
        self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT_S)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT_S)

    @staticmethod
    async def _hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")
