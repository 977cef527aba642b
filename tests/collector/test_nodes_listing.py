"""``GET /api/v1/nodes`` for a fleet larger than one chunk: streamed, and the same JSON as one body.

Issue 13, finding 6: one body for 10,000 maximal nodes would be ~840 MiB of JSON held at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from collector.nodes_listing import STREAM_CHUNK_NODES
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

NODES = STREAM_CHUNK_NODES + 7


@asynccontextmanager
async def _fleet(make_client: MakeClient, nodes: int) -> AsyncIterator[Any]:
    """A collector with ``nodes`` agents connected, each after one heartbeat (more sockets than a TestClient pools)."""
    client = await make_client(max_nodes=nodes + 10)
    base = f"http://{client.host}:{client.port}"
    async with aiohttp.ClientSession(base_url=base, connector=aiohttp.TCPConnector(limit=0)) as agents:
        sockets = []
        for index in range(nodes):
            ws, _ = await connect_agent(agents, hello(f"node-{index:04d}", f"inst-{index}"))
            await send_heartbeat(ws, heartbeat(1))
            sockets.append(ws)
        yield client
        for ws in sockets:
            await ws.close()


class TestStreamedListing:
    async def test_a_fleet_over_one_chunk_is_streamed_with_every_node(self, make_client: MakeClient) -> None:
        """207 nodes: chunked transfer (no whole body), valid JSON, every node once, in node-id order, samples in."""
        async with _fleet(make_client, NODES) as client:
            resp = await client.get("/api/v1/nodes")
            raw = await resp.read()
        assert resp.status == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.headers
        assert resp.content_type == "application/json"
        body = json.loads(raw)
        ids = [item["status"]["node_id"] for item in body["nodes"]]
        assert ids == [f"node-{index:04d}" for index in range(NODES)]
        assert all(item["last_sample"]["seq"] == 1 for item in body["nodes"])
        assert "next_after" not in body
        assert isinstance(body["server_time_at"], float)

    async def test_a_page_over_one_chunk_keeps_its_next_after(self, make_client: MakeClient) -> None:
        """limit=205 of 207 nodes: streamed too, and next_after names the page's last node."""
        async with _fleet(make_client, NODES) as client:
            body = json.loads(await (await client.get(f"/api/v1/nodes?limit={NODES - 2}")).read())
            rest = json.loads(await (await client.get(f"/api/v1/nodes?after={body['next_after']}")).read())
        assert len(body["nodes"]) == NODES - 2
        assert body["next_after"] == f"node-{NODES - 3:04d}"
        tail = [item["status"]["node_id"] for item in rest["nodes"]]
        assert tail == [f"node-{NODES - 2:04d}", f"node-{NODES - 1:04d}"]
