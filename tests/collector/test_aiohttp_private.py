"""Canaries for every private aiohttp name the collector borrows (collector.aiohttp_private), one per name.

Each fails when an aiohttp release renames, removes or reshapes what we rely on;
pyproject pins aiohttp to the minor range these passed on. The last class shows
why no private call is needed to free a closed websocket's ping timer.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from collector import aiohttp_private
from collector.admission import AdmissionSite
from collector.app import RUNTIME_KEY, create_app
from shared.codec import encode
from tests.support.collector import fast_config
from tests.support.messages import hello

# sha256 of the dedented source of web.TCPSite.start on aiohttp 3.14.5, which
# aiohttp_private.serve_with_factory copies. A new value means aiohttp changed it: re-read it, update the copy.
TCPSITE_START_SHA256 = "b3b4645dab7c6e4371342658ce4e8b0a1f20a61602edea47b39059ffe4fb8066"


def _source_digest(function: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(function)).encode()).hexdigest()


class TestCancelHeartbeat:
    async def test_cancel_heartbeat_cancels_the_armed_ping(self, aiohttp_client: Any) -> None:
        """ws._cancel_heartbeat() exists and cancels the ping timer prepare() armed."""
        held: list[web.WebSocketResponse] = []

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(heartbeat=30.0)
            await ws.prepare(request)
            held.append(ws)
            timers_before = len(_live_ws_timers(asyncio.get_running_loop()))
            aiohttp_private.cancel_heartbeat(ws)
            assert len(_live_ws_timers(asyncio.get_running_loop())) == timers_before - 1
            await ws.close()
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        client = await aiohttp_client(app)
        viewer = await client.ws_connect("/ws")
        await viewer.receive(timeout=3.0)
        assert held


class TestServerConnections:
    async def test_open_connections_counts_live_connections(self, aiohttp_client: Any) -> None:
        """web.Server._connections holds one entry per open connection, so admission can count them in O(1)."""
        client = await aiohttp_client(web.Application())
        server = client.server.runner.server
        assert server is not None
        assert aiohttp_private.open_connections(server) == 0
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        for _ in range(100):
            if aiohttp_private.open_connections(server) == 1:
                break
            await asyncio.sleep(0.01)
        assert aiohttp_private.open_connections(server) == 1
        writer.close()
        await writer.wait_closed()
        del reader


class TestTcpSiteStart:
    def test_tcpsite_start_is_the_code_we_copied(self) -> None:
        """web.TCPSite.start is unchanged since serve_with_factory copied it (same source, byte for byte)."""
        assert _source_digest(web.TCPSite.start) == TCPSITE_START_SHA256, (
            "aiohttp changed TCPSite.start: re-read it and update collector.aiohttp_private.serve_with_factory"
        )

    async def test_site_fields_we_read_exist(self) -> None:
        """An AdmissionSite starts on port 0, reports its bound port, serves, and stops with its runner."""
        app = create_app(fast_config())
        runner = web.AppRunner(app)
        await runner.setup()
        site = AdmissionSite(runner, "127.0.0.1", 0, limit=10, on_refused=lambda: None)
        assert aiohttp_private.site_server(site) is runner.server
        await site.start()
        try:
            assert site.port != 0
            assert runner.addresses[0][1] == site.port
            async with aiohttp.ClientSession() as session:
                resp = await session.get(f"http://127.0.0.1:{site.port}/api/v1/health")
                assert resp.status == 200
        finally:
            await runner.cleanup()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", site.port)


def _live_ws_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """Scheduled, not cancelled, timers whose callback belongs to a websocket response."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [
        handle
        for handle in scheduled
        if not handle.cancelled() and isinstance(getattr(handle._callback, "__self__", None), web.WebSocketResponse)  # type: ignore[attr-defined]
    ]


class TestClosedWebsocketsHoldNoTimer:
    """A websocket whose handler is done holds no ping timer: ``cancel_heartbeat`` is why (ws._cancel_heartbeat()).

    Without it (aiohttp 3.14.5) a viewer that broke the protocol or vanished left its 30 s
    ping timer scheduled, and the timer held the request, its handler and its transport.
    """

    @pytest.mark.parametrize("ending", ["viewer_closes", "viewer_breaks_protocol", "viewer_vanishes"])
    async def test_subscriber_ping_timer_is_gone_after_the_handler(self, aiohttp_client: Any, ending: str) -> None:
        """However a subscriber ends, its 30 s ping timer (which holds the request and transport) is cancelled."""
        client = await aiohttp_client(create_app(fast_config(ws_heartbeat_s=30.0)))
        loop = asyncio.get_running_loop()
        for _ in range(5):
            viewer = await client.ws_connect("/api/v1/subscribe")
            await viewer.receive(timeout=3.0)  # the snapshot
            if ending == "viewer_closes":
                await viewer.close()
            elif ending == "viewer_breaks_protocol":
                await viewer.send_bytes(encode(hello()))
                await viewer.receive(timeout=3.0)  # the error
                await viewer.receive(timeout=3.0)  # the close
            else:
                transport = viewer._response.connection.transport
                assert transport is not None
                transport.abort()
        runtime = client.server.app[RUNTIME_KEY]
        for _ in range(200):
            if not runtime.websockets:
                break
            await asyncio.sleep(0.01)
        assert not runtime.websockets
        assert _live_ws_timers(loop) == []


class TestQueuedMessages:
    async def test_parsed_messages_wait_in_the_reader_queue_and_can_be_taken_at_once(self, aiohttp_client: Any) -> None:
        """ws._reader queues what aiohttp parsed: queued_binary, take_queued (no wait) and queued see it in order."""
        checked: list[bool] = []

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            assert not aiohttp_private.queued(ws)
            await _until(lambda: aiohttp_private.queued_binary(ws))  # the first frame parsed, no receive() yet
            first = aiohttp_private.take_queued(ws)
            assert (first.type, first.data) == (aiohttp.WSMsgType.BINARY, b"one")
            await _until(lambda: aiohttp_private.queued(ws))
            assert not aiohttp_private.queued_binary(ws)  # a text frame is next: left for receive()
            text = await ws.receive()
            assert (text.type, text.data) == (aiohttp.WSMsgType.TEXT, "two")
            await _until(lambda: aiohttp_private.queued(ws))  # the close frame
            assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
            checked.append(True)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        client = await aiohttp_client(app)
        ws = await client.ws_connect("/ws")
        await ws.send_bytes(b"one")
        await ws.send_str("two")
        await ws.close()
        await _until(lambda: bool(checked))


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, for up to 3 s."""
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("expected the condition within 3 s, got it still false")
