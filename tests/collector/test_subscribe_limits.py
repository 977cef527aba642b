"""Issue 13, findings 12c and 16a: a subscriber cap, a bound on a subscriber's unsent bytes, paced history requests.

Real collectors on loopback (``aiohttp_client``); the viewers that never read are raw TCP sockets
that finish the websocket handshake and then stop reading, with a small receive buffer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.fanout import FanoutLimits
from collector.history_requests import HISTORY_REQUEST_BURST, HISTORY_REQUESTS_PER_S, REQUESTS_IN_BURST
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.errors import CloseCode
from shared.messages import Error, HistoryRequest, NodeHistory
from tests.support.collector import MakeClient, connect_agent, expect_rejection, fast_config, send_heartbeat
from tests.support.messages import heartbeat, hello

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


async def collector(aiohttp_client: Any, limits: FanoutLimits, **overrides: Any) -> TestClient[Any, Any]:
    """A real collector with the test timeouts, ``limits`` and ``overrides``."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(fast_config(**overrides), fanout_limits=limits))
    return client


async def open_stalled(client: TestClient[Any, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A subscriber that completes the websocket handshake and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /api/v1/subscribe HTTP/1.1\r\nHost: {client.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status = await reader.readline()
    assert b" 101 " in status, status
    await reader.readuntil(b"\r\n\r\n")
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    transport.pause_reading()  # from here on nothing is read: the socket's buffers fill
    return reader, writer


async def health(client: TestClient[Any, Any]) -> dict[str, Any]:
    """``/api/v1/health``'s body."""
    body: dict[str, Any] = await (await client.get("/api/v1/health")).json()
    return body


async def metric(client: TestClient[Any, Any], reason: str) -> float:
    """``nodewatch_collector_protocol_errors_total{endpoint="subscribe",reason=...}``, 0 when absent."""
    text = await (await client.get("/metrics")).text()
    wanted = f'nodewatch_collector_protocol_errors_total{{endpoint="subscribe",reason="{reason}"}} '
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted)), 0.0)


def fat_heartbeat(seq: int) -> Any:
    """A legal heartbeat of ~40 KiB (64 long mount names twice): updates that fill a socket fast."""
    names = [f"/{'m' * 200}{i:02d}" for i in range(64)]
    return heartbeat(seq, disks={name: [100, 50] for name in names}, disks_read_only=names)


def rss_bytes() -> int:
    """This process's resident set size (the in-process collector's memory is in it)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES


class TestSubscriberCap:
    """--max-subscribers: past it, 503 with Retry-After, counted."""

    async def test_a_subscriber_past_the_cap_gets_503_with_retry_after(self, aiohttp_client: Any) -> None:
        """With a cap of 2, the third viewer gets 503 capacity_reached and Retry-After; once one leaves, it gets in."""
        client = await collector(aiohttp_client, FanoutLimits(max_subscribers=2))
        first = await client.ws_connect("/api/v1/subscribe")
        second = await client.ws_connect("/api/v1/subscribe")
        response = await client.get(
            "/api/v1/subscribe",
            headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()},
        )  # fmt: skip
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.json())["error"] == "capacity_reached"
        assert await metric(client, "subscriber_limit") == 1
        assert (await health(client))["fanout"]["refused_full"] == 1
        await first.close()
        await asyncio.sleep(0.05)
        third = await client.ws_connect("/api/v1/subscribe")
        assert (await third.receive(timeout=5)).type is WSMsgType.BINARY  # its snapshot
        await second.close()
        await third.close()


class TestUnsentBytes:
    """A subscriber that does not read is cut when its unsent bytes pass the bound, long before a send timeout."""

    async def test_a_viewer_that_stops_reading_is_cut_at_the_byte_bound(self, aiohttp_client: Any) -> None:
        """A stalled viewer gets 4429 within a few flushes of fat updates; a reading viewer goes on receiving."""
        limits = FanoutLimits(max_unsent_bytes=256 * 1024)
        client = await collector(aiohttp_client, limits, send_timeout_s=60.0)  # a send timeout cannot be what cuts
        reader = await client.ws_connect("/api/v1/subscribe", max_msg_size=0)
        await reader.receive(timeout=5)
        _, stalled = await open_stalled(client)
        ws, _ = await connect_agent(client, hello("node-a", interval_s=0.05))
        started = time.monotonic()
        seq = 0
        while (await health(client))["subscribers"] == 2:
            assert time.monotonic() - started < 20, "the stalled viewer was never cut"
            seq += 1
            await send_heartbeat(ws, fat_heartbeat(seq))
            await asyncio.sleep(0.05)
        assert await metric(client, "subscriber_too_slow") == 1
        assert (await health(client))["fanout"]["cut_unsent_bytes"] == 1
        seq += 1
        await send_heartbeat(ws, fat_heartbeat(seq))
        async with asyncio.timeout(5):
            while True:  # the reading viewer still gets the newest sample
                message = decode((await reader.receive()).data, COLLECTOR_LIMITS)
                entries = getattr(message, "nodes", [])
                if any(e.last_sample is not None and e.last_sample.seq == seq for e in entries):
                    break
        stalled.close()

    async def test_viewers_that_never_read_hold_a_bounded_share_of_the_snapshot(self, aiohttp_client: Any) -> None:
        """100 viewers that never read a ~1.6 MiB snapshot add far less memory than 100 snapshots."""
        client = await collector(aiohttp_client, FanoutLimits(), send_timeout_s=60.0)  # no send timeout cuts them
        for index in range(60):
            ws, _ = await connect_agent(client, hello(f"node-{index:02d}", f"inst-{index}"))
            await send_heartbeat(ws, fat_heartbeat(1))
        viewer = await client.ws_connect("/api/v1/subscribe", max_msg_size=0)
        snapshot_bytes = 0
        with contextlib.suppress(TimeoutError):
            while True:  # every part; nothing else comes, as no node changes
                snapshot_bytes += len((await viewer.receive(timeout=0.5)).data)
        assert snapshot_bytes > 2**20
        before = rss_bytes()
        stalled = [await open_stalled(client) for _ in range(100)]
        await asyncio.sleep(1.0)
        grown = rss_bytes() - before
        text = await (await client.get("/metrics")).text()
        assert 'nodewatch_collector_connections_active{endpoint="subscribe"} 101.0' in text  # none was cut
        assert grown < 25 * snapshot_bytes, (grown, snapshot_bytes)  # 100 whole snapshots would be 100x
        for _, writer in stalled:
            writer.close()


class TestHistoryRequests:
    """Finding 16a: history requests are paced per subscriber, and a flood is closed."""

    async def test_a_flood_of_plain_requests_is_answered_at_the_documented_pace(self, make_client: MakeClient) -> None:
        """150 requests over 1.5 s get at most the burst plus the rate's answers; the last one is still answered."""
        client = await make_client()
        agents = [(await connect_agent(client, hello(node_id, node_id)))[0] for node_id in ("node-a", "node-b")]
        for seq in range(1, 30):
            await send_heartbeat(agents[0], heartbeat(seq))
        viewer = await client.ws_connect("/api/v1/subscribe")
        await viewer.receive(timeout=5)
        answered: list[str] = []
        last_answered = asyncio.Event()

        async def count() -> None:
            async for msg in viewer:
                message = decode(msg.data, COLLECTOR_LIMITS)
                if isinstance(message, NodeHistory):
                    answered.append(message.node_id)
                    if message.node_id == "node-b":
                        last_answered.set()

        counter = asyncio.create_task(count())
        started = time.monotonic()
        for index in range(150):  # the last request, for node-b, is the newest one pending when the flood ends
            await viewer.send_bytes(encode(HistoryRequest(node_id="node-b" if index == 149 else "node-a")))
            await asyncio.sleep(0.01)
        elapsed_s = time.monotonic() - started
        budget = HISTORY_REQUEST_BURST + HISTORY_REQUESTS_PER_S * elapsed_s + 1
        assert len(answered) <= budget, (len(answered), budget)
        await asyncio.wait_for(last_answered.wait(), 5.0)  # the newest pending request is answered in the end
        counter.cancel()
        await viewer.close()

    async def test_a_request_flood_is_closed_with_4430(self, make_client: MakeClient) -> None:
        """More requests at once than the documented burst close the viewer with 4430 rate_exceeded."""
        client = await make_client()
        viewer = await client.ws_connect("/api/v1/subscribe")
        await viewer.receive(timeout=5)
        for _ in range(REQUESTS_IN_BURST + 50):
            await viewer.send_bytes(encode(HistoryRequest(node_id="node-a")))
        error, code, reason = await expect_rejection(viewer)
        assert code == CloseCode.RATE_EXCEEDED
        assert reason == "rate_exceeded"
        assert isinstance(error, Error)
        assert await metric(client, "rate_exceeded") == 1
