"""``GET /api/v1/nodes`` listings share a bounded number of slots, against a real collector on loopback.

Each listing of a fleet of maximal heartbeats holds up to one chunk's JSON (~17 MiB) until the
client takes it, so clients that ask and never read used to pin that much each, without bound.
Here one listing slot is configured; a client that asks and never reads holds it (its socket's
receive buffer is 4 KiB, the listing ~10 MB, so the collector's write cannot finish). Fails on
the code before the gate: the second listing got a 200 and nothing was counted.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from collector.nodes_listing import MAX_SCRAPES, STREAM_CHUNK_NODES
from shared.messages import Heartbeat
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

NODES = STREAM_CHUNK_NODES + 10  # streamed: more than one chunk
WAIT_S = 30.0  # generous on 2 busy cores; a passing test waits far less


def fat_heartbeat(seq: int) -> Heartbeat:
    """A legal heartbeat near the 64 KiB frame limit (1,024 cores, 64 long mounts): ~48 KiB of JSON listed."""
    mounts = {f"/{'m' * 200}{i:02d}": [100, 50] for i in range(64)}
    inodes = {key: [1000, 10] for key in mounts}
    return heartbeat(
        seq, cpu_per_core_percent=[12.5] * 1024, disks=mounts, disk_inodes=inodes, disks_read_only=[*mounts]
    )


@asynccontextmanager
async def fat_fleet(make_client: MakeClient, **config: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A collector (``config`` on top of the test defaults) holding ``NODES`` nodes, each with a maximal sample."""
    client = await make_client(max_nodes=NODES + 10, **config)
    sample = fat_heartbeat(1)
    async with aiohttp.ClientSession(client.make_url(""), connector=aiohttp.TCPConnector(limit=0)) as agents:
        for index in range(NODES):
            ws, _ = await connect_agent(agents, hello(f"node-{index:04d}", f"inst-{index}"))
            await send_heartbeat(ws, sample)
            await ws.close()  # the node stays listed (offline) with its last sample
        yield client


async def stalled_listing(client: TestClient[Any, Any], path: str = "/api/v1/nodes") -> socket.socket:
    """A client that asks for ``path`` and never reads: a 4 KiB receive buffer, set before connecting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", client.port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: collector\r\n\r\n".encode())
    return sock


async def metric(client: TestClient[Any, Any], name: str) -> float:
    """One unlabelled sample of /metrics (0 when absent)."""
    text = await (await client.get("/metrics")).text()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def wait_metric(client: TestClient[Any, Any], name: str, value: float) -> None:
    """Wait until /metrics shows ``name`` at ``value``."""
    async with asyncio.timeout(WAIT_S):
        while await metric(client, name) != value:  # noqa: ASYNC110 - polls real I/O
            await asyncio.sleep(0.05)


class TestListingGate:
    async def test_a_listing_past_the_slots_gets_503_with_retry_after_and_is_counted(
        self, make_client: MakeClient
    ) -> None:
        """With the one slot held by a client that does not read, the next listing gets 503, Retry-After, counted."""
        async with fat_fleet(make_client, max_listings=1, listing_wait_s=0.0, listing_send_timeout_s=300.0) as client:
            sock = await stalled_listing(client)
            await wait_metric(client, "nodewatch_collector_listings_active", 1.0)
            resp = await client.get("/api/v1/nodes?limit=1")
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"] == "capacity_reached"
            assert (await client.get("/api/v1/health")).status == 200  # the rest of the API is served
            assert await metric(client, "nodewatch_collector_listings_refused_total") == 1.0
            errors = 'nodewatch_collector_protocol_errors_total{endpoint="http",reason="listing_limit"}'
            assert await metric(client, errors) == 1.0
            sock.close()  # the stalled client leaves: its slot comes back
            await wait_metric(client, "nodewatch_collector_listings_active", 0.0)
            resp = await client.get("/api/v1/nodes?limit=1")
            assert resp.status == 200
            assert len((await resp.json())["nodes"]) == 1

    async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(self, make_client: MakeClient) -> None:
        """A listing the client takes no write of for the send timeout is dropped, counted, and its slot reused."""
        async with fat_fleet(make_client, max_listings=1, listing_wait_s=0.0, listing_send_timeout_s=0.5) as client:
            sock = await stalled_listing(client)
            await wait_metric(client, "nodewatch_collector_listings_cut_total", 1.0)
            await wait_metric(client, "nodewatch_collector_listings_active", 0.0)
            resp = await client.get("/api/v1/nodes")
            assert resp.status == 200
            assert len((await resp.json())["nodes"]) == NODES  # the whole streamed listing, to a client that reads
            sock.close()


class TestScrapeGate:
    async def test_scrapes_past_the_slots_get_503_and_are_counted(self, make_client: MakeClient) -> None:
        """Two scrapers that never read hold /metrics' two slots: the next scrape gets 503, counted; then 200 again.

        Before the gate every such scrape pinned its whole text (~30 MB here) for as long as it liked.
        """
        async with fat_fleet(make_client, listing_wait_s=0.0, listing_send_timeout_s=300.0) as client:
            stalled = [await stalled_listing(client, "/metrics") for _ in range(MAX_SCRAPES)]  # ~30 MB of text
            refused = 0
            async with asyncio.timeout(WAIT_S):
                while (resp := await client.get("/metrics")).status != 503:
                    await resp.read()
                    await asyncio.sleep(0.05)
            refused += 1
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"] == "capacity_reached"
            assert (await client.get("/api/v1/nodes?limit=1")).status == 200  # listings have slots of their own
            for sock in stalled:
                sock.close()
            async with asyncio.timeout(WAIT_S):
                while (resp := await client.get("/metrics")).status != 200:
                    refused += 1
                    await asyncio.sleep(0.05)
            errors = 'nodewatch_collector_protocol_errors_total{endpoint="http",reason="scrape_limit"}'
            found = re.search(rf"^{re.escape(errors)} (\S+)$", await resp.text(), re.MULTILINE)
            assert found is not None
            assert float(found.group(1)) == refused
