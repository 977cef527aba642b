"""Issue 13, finding 11, against a real collector on loopback: unfinished fragmented messages share one bound.

Each connection upgrades to /api/v1/ingest and sends a binary message in 16 KiB fragments that
never ends. Before the budget, aiohttp parked every one of them (~147 KiB each at worst), so
1,400 connections drove a collector under a 256 MiB limit to MemoryError; here the budget is
1 MiB, so 48 connections of 64 KiB each are too many. Fails on the code before: nothing was shed.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from collector.admission import AdmissionSite
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig
from collector.runtime import CollectorRuntime
from collector.trust.nodetable import PeerGate
from collector.trust.parked import ParkedBytes
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.messages import hello

BUDGET = 1 << 20
PARKERS = 48
FRAGMENT = 16 * 1024
FRAGMENTS = 4  # 64 KiB each, under aiohttp's 128 KiB message cap, so only the budget can shed them


@dataclass
class Served:
    """The collector's port and its admission site (whose budget the test reads)."""

    port: int
    site: AdmissionSite
    runtime: CollectorRuntime


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """A collector behind the CLI's ``AdmissionSite`` with a 1 MiB parked-bytes budget."""
    app = create_app(CollectorConfig(max_nodes=100))
    runtime = app[RUNTIME_KEY]
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = AdmissionSite(
        runner,
        "127.0.0.1",
        0,
        limit=200,
        on_refused=runtime.refused_busy,
        count=lambda: runtime.stats.connections_active["ingest"],
        peer_gate=PeerGate(max_per_peer=128, max_pending=256),
        clock=runtime.clock,
        parked=ParkedBytes(BUDGET),
    )
    await site.start()
    try:
        yield Served(runner.addresses[0][1], site, runtime)
    finally:
        await runner.cleanup()


def frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """One masked client frame (RFC 6455 5.2); payloads here are under 64 KiB."""
    mask = os.urandom(4)
    head = bytes((0x80 * fin | opcode,))
    length = len(payload)
    head += bytes((0x80 | length,)) if length < 126 else bytes((0x80 | 126,)) + length.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def parker(port: int, *, late: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw websocket on ingest that sends an unfinished fragmented binary message of 64 KiB.

    ``late``: the connection first serves a plain health request (kept alive), then upgrades.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if late:
        writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: c\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /api/v1/ingest HTTP/1.1\r\nHost: c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert status.startswith(b"HTTP/1.1 101 ")
    writer.write(frame(0x2, b"\x00" * FRAGMENT, fin=False))
    for _ in range(FRAGMENTS - 1):
        writer.write(frame(0x0, b"\x00" * FRAGMENT, fin=False))
    await writer.drain()
    return reader, writer


async def closed_with(reader: asyncio.StreamReader) -> bytes | None:
    """The close frame's payload if the collector closes this socket within a second, else None."""
    try:
        data = await asyncio.wait_for(reader.read(256), timeout=1.0)
    except TimeoutError:
        return None
    return data[2:] if data[:1] == b"\x88" else data


async def agent_acked(port: int) -> bool:
    """An honest agent says hello; True if the collector acks it."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ingest", heartbeat=None) as ws,
    ):
        await ws.send_bytes(encode(hello("honest", "inst-honest")))
        msg = await ws.receive(timeout=3)
        return msg.type is aiohttp.WSMsgType.BINARY and isinstance(decode(msg.data, COLLECTOR_LIMITS), Ack)


class TestParkedBytes:
    """Unfinished messages on many connections stay within one budget; honest agents still connect."""

    @pytest.mark.parametrize("late", [False, True], ids=["first-request", "after-a-kept-alive-request"])
    async def test_parkers_past_the_budget_are_closed_1009_and_honest_agents_connect(
        self, served: Served, late: bool
    ) -> None:
        """48 connections parking 64 KiB each under a 1 MiB budget: the parked total stays bounded, the largest
        are closed with 1009 parked_bytes_exceeded, and an honest agent is still acked; upgrading a kept-alive
        connection late counts the same."""
        sockets = [await parker(served.port, late=late) for _ in range(PARKERS)]
        await asyncio.sleep(0.2)
        assert served.site.parked.total <= BUDGET + FRAGMENTS * (FRAGMENT + 8)
        endings = await asyncio.gather(*(closed_with(r) for r, _ in sockets))
        shed = [e for e in endings if e is not None]
        assert len(shed) >= PARKERS - BUDGET // (FRAGMENTS * FRAGMENT)
        assert all(e == (1009).to_bytes(2, "big") + b"parked_bytes_exceeded" for e in shed)
        assert await agent_acked(served.port)
        await asyncio.sleep(0.1)  # the shed connections' handlers end and count them
        assert served.runtime.stats.protocol_errors[("ingest", "parked_bytes_exceeded")] == len(shed)
        for _, writer in sockets:
            writer.close()

    async def test_a_few_parkers_under_the_budget_are_left_alone(self, served: Served) -> None:
        """Four unfinished messages (256 KiB in all) under a 1 MiB budget: none is closed."""
        sockets = [await parker(served.port) for _ in range(4)]
        endings = await asyncio.gather(*(closed_with(r) for r, _ in sockets))
        assert endings == [None] * 4
        assert served.site.parked.total >= 4 * FRAGMENTS * FRAGMENT
        for _, writer in sockets:
            writer.close()


class TestShedOrder:
    """Who the budget sheds, on a fake clock."""

    def test_the_largest_go_first_and_small_ones_never(self) -> None:
        """Over the budget, the connections parking most are shed until the total is back to 3/4 of it."""
        parked = ParkedBytes(100_000)
        small, big, bigger = parked.open(0.0), parked.open(0.0), parked.open(0.0)
        for conn in (small, big, bigger):
            parked.activate(conn)
        assert parked.received(small, 3000, 0.0) == []
        assert parked.received(big, 40_000, 0.0) == []
        assert parked.received(bigger, 60_000, 0.0) == [bigger]
        assert parked.total == 43_000
        assert not small.shed

    def test_honest_agents_behind_a_lagging_loop_are_not_shed(self) -> None:
        """A connect storm: every connection holds a few queued heartbeats but takes one now and then; none is shed.

        Regression: a 10,000-node storm closed ~2,200 honest agents with 1009 parked_bytes_exceeded.
        """
        parked = ParkedBytes(100_000)
        conns = [parked.open(0.0) for _ in range(40)]
        for conn in conns:
            parked.activate(conn)
            parked.taken(conn, 0, 0.5, data=True)  # its hello
        shed = [victim for conn in conns for victim in parked.received(conn, 5000, 3.0)]
        assert parked.total == 200_000
        assert shed == []

    def test_small_live_connections_go_once_they_stall(self) -> None:
        """Over the budget, connections under 32 KiB stay while they take messages; 10 s without one, they go."""
        parked = ParkedBytes(100_000)
        conns = [parked.open(0.0) for _ in range(15)]
        for conn in conns:
            parked.activate(conn)
            parked.taken(conn, 0, 0.0, data=True)
        assert [victim for conn in conns for victim in parked.received(conn, 20_000, 5.0)] == []
        assert parked.received(conns[0], 1, 10.5) != []

    def test_past_four_times_the_budget_size_alone_decides(self) -> None:
        """Small connections that still take messages are shed too once the total passes 4x the budget."""
        parked = ParkedBytes(100_000)
        conns = [parked.open(0.0) for _ in range(25)]
        for conn in conns:
            parked.activate(conn)
            parked.taken(conn, 0, 1.0, data=True)
        assert [victim for conn in conns for victim in parked.received(conn, 20_000, 1.0)] == []  # one scan, none
        assert parked.received(conns[0], 1, 1.2) != []  # the next scan sees 500 KB

    def test_a_paced_replay_is_shed_only_once_it_stalls(self) -> None:
        """A replaying connection's full queue is spared while it takes frames, shed after a second without."""
        parked = ParkedBytes(100_000)
        replay = parked.open(0.0)
        parked.activate(replay)
        replay.replaying = True
        parked.taken(replay, 0, 0.5, data=True)
        assert parked.received(replay, 120_000, 0.9) == []
        assert parked.received(replay, 1, 1.6) == [replay]

    def test_taking_messages_frees_their_bytes(self) -> None:
        """Whole messages taken by the handler leave nothing parked (headers included)."""
        parked = ParkedBytes(100_000)
        conn = parked.open(0.0)
        parked.activate(conn)
        parked.received(conn, 2 * (600 + 6), 0.0)
        parked.taken(conn, 600, 0.0, data=True)
        parked.taken(conn, 600, 0.0, data=True)
        assert parked.total == 0

    def test_a_connection_counts_in_the_total_only_once_it_is_an_ingest_websocket(self) -> None:
        """Plain HTTP bytes stay out of the total; at the upgrade every byte the connection received joins it."""
        parked = ParkedBytes(100_000)
        conn = parked.open(0.0)
        assert parked.received(conn, 200_000, 0.0) == []
        assert parked.total == 0
        parked.activate(conn)
        assert parked.total == 200_000
