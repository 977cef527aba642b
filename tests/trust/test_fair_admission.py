"""The per-address cap is fair to honest peers: an address a hello vouched for may reconnect in a storm.

Against a real collector on loopback behind the CLI's ``AdmissionSite`` and the runtime's own
``PeerGate`` (32 unauthenticated sockets per address, 512 for a vouched one). Fails on the code
before vouching, where 100 sockets from one address arriving faster than their request heads got
68 answers of 429, though an agent at that address had just said hello.
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
from shared.codec import encode
from tests.support.messages import hello

STORM = 100  # more than the plain cap of 32, fewer than the vouched 512
HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n"


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A collector on 127.0.0.1 behind an ``AdmissionSite`` that uses the runtime's peer gate, as the CLI does."""
    app = create_app(CollectorConfig(max_nodes=10))
    runtime = app[RUNTIME_KEY]
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = AdmissionSite(
        runner,
        "127.0.0.1",
        0,
        limit=100,
        on_refused=runtime.refused_busy,
        count=lambda: runtime.stats.connections_active["ingest"],
        peer_gate=runtime.peer_gate,
        clock=runtime.clock,
    )
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def say_hello(port: int, source: str) -> None:
    """An agent at ``source`` says hello and is acked, then stays connected for the test's length."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ingest", heartbeat=None) as ws,
    ):
        await ws.send_bytes(encode(hello("node-a", "inst-a")))
        msg = await ws.receive(timeout=3)
        assert msg.type is aiohttp.WSMsgType.BINARY


async def storm_statuses(port: int, source: str) -> list[bytes]:
    """``STORM`` sockets from ``source`` all connect before any sends its head; each one's status line."""
    sockets = [await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)) for _ in range(STORM)]
    for _, writer in sockets:
        writer.write(HEAD)

    async def status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        return line.split(b" ")[1] if line else b"closed"

    return await asyncio.gather(*(status(r, w) for r, w in sockets))


class TestVouchedAddress:
    """An address that passed a hello gets room for a reconnect storm; one that never did keeps the plain cap."""

    async def test_a_storm_from_a_vouched_address_is_served(self, port: int) -> None:
        """After an agent at 127.0.0.1 is acked, 100 sockets from that address at once are all served (no 429)."""
        await say_hello(port, "127.0.0.1")
        statuses = await storm_statuses(port, "127.0.0.1")
        assert statuses.count(b"200") == STORM

    async def test_an_address_never_vouched_for_keeps_the_plain_cap(self, port: int) -> None:
        """From an address with no accepted hello, the storm past 32 pending sockets is answered 429."""
        await say_hello(port, "127.0.0.1")
        statuses = await storm_statuses(port, "127.0.0.3")
        assert statuses.count(b"429") == STORM - 32
        assert statuses.count(b"200") == 32
