"""Issue 13, finding 4, against a real collector on loopback: idle sockets no longer lock agents out.

The collector runs behind the CLI's ``AdmissionSite`` with a small ``PeerGate`` (4 unauthenticated
sockets per address) and a short header deadline. Each test fails on the site before the trust
wiring: there idle sockets were never closed and counted toward the ingest admission limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from collector.admission import AdmissionSite
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig
from collector.trust.nodetable import PeerGate
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.messages import hello

HEADER_TIMEOUT_S = 0.3
PER_PEER = 4


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A collector on 127.0.0.1 admitting 2 ingest websockets (max_nodes 1 + margin 1), as the CLI serves it."""
    app = create_app(CollectorConfig(max_nodes=1, connection_margin=1))
    runtime = app[RUNTIME_KEY]
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = AdmissionSite(
        runner,
        "127.0.0.1",
        0,
        limit=2,
        on_refused=runtime.refused_busy,
        count=lambda: runtime.stats.connections_active["ingest"],
        peer_gate=PeerGate(max_per_peer=PER_PEER, max_pending=64),
        header_timeout_s=HEADER_TIMEOUT_S,
    )
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def idle_sockets(port: int, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` TCP connections from 127.0.0.1 that never send a byte."""
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]


async def agent_acked(port: int, source: str) -> bool:
    """A real agent connecting from ``source`` says hello; True if the collector acks it."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ingest", heartbeat=None) as ws,
    ):
        await ws.send_bytes(encode(hello("node-a", "inst-a")))
        msg = await ws.receive(timeout=3)
        return msg.type is aiohttp.WSMsgType.BINARY and isinstance(decode(msg.data, COLLECTOR_LIMITS), Ack)


class TestIdleSockets:
    """Idle sockets with no token cost their own address's slots, never the agents' admission."""

    async def test_forty_idle_sockets_leave_room_for_a_real_agent(self, port: int) -> None:
        """Forty idle sockets from one address, against a limit of 2: an agent from another address is still acked."""
        sockets = await idle_sockets(port, 40)
        assert await agent_acked(port, "127.0.0.2")
        for _, writer in sockets:
            writer.close()

    async def test_past_the_per_address_cap_a_socket_gets_429(self, port: int) -> None:
        """The fifth unauthenticated socket from one address is answered 429 with Retry-After, then closed."""
        held = await idle_sockets(port, PER_PEER)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), timeout=3)
        assert answer.startswith(b"HTTP/1.1 429 ")
        assert b"Retry-After: 5" in answer
        assert b"too_many_connections" in answer
        for _, w in [*held, (reader, writer)]:
            w.close()

    async def test_a_socket_that_sends_no_request_is_closed_at_the_header_deadline(self, port: int) -> None:
        """A socket that sends nothing gets 408 and is closed after the header deadline, freeing its slot."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), timeout=3)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
        assert await agent_acked(port, "127.0.0.1")  # the address's slots are free again

    async def test_health_is_served_through_the_gate(self, port: int) -> None:
        """A plain HTTP request passes the head reader unchanged: health answers 200."""
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/api/v1/health") as r:
            assert r.status == 200
