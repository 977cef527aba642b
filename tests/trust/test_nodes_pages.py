"""Finding 6: ``GET /api/v1/nodes`` in pages (``?limit=&after=``) on a real collector: a fleet need not be one body."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collector.http_api import MAX_PAGE_NODES
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

NODE_IDS = ["node-a", "node-b", "node-c", "node-d", "node-e"]


async def fleet(make_client: MakeClient) -> TestClient[Any, Any]:
    """A collector holding five nodes, each with one heartbeat (their agents then close: the nodes stay listed)."""
    client = await make_client()
    for node_id in reversed(NODE_IDS):  # registration order is not the page order
        ws, _ = await connect_agent(client, hello(node_id, f"inst-{node_id}"))
        await send_heartbeat(ws, heartbeat(1, cpu=12.5))
        await ws.close()
    return client


class TestPages:
    """Paging through the node list."""

    async def test_pages_cover_every_node_once_in_node_id_order(self, make_client: MakeClient) -> None:
        """limit=2 gives pages of 2, 2 and 1 nodes chained by next_after; together they equal the unpaged list."""
        client = await fleet(make_client)
        pages: list[list[str]] = []
        query = "limit=2"
        entries: list[dict[str, Any]] = []
        while True:
            body = await (await client.get(f"/api/v1/nodes?{query}")).json()
            pages.append([e["status"]["node_id"] for e in body["nodes"]])
            entries += body["nodes"]
            if "next_after" not in body:
                break
            query = f"limit=2&after={body['next_after']}"
        assert pages == [["node-a", "node-b"], ["node-c", "node-d"], ["node-e"]]
        whole = await (await client.get("/api/v1/nodes")).json()
        assert "next_after" not in whole
        assert whole["nodes"] == entries
        assert entries[0]["last_sample"]["cpu_percent"] == 12.5
        assert entries[0]["facts"]["hostname"] == "host-a"

    async def test_after_a_node_id_that_is_gone_still_pages_on(self, make_client: MakeClient) -> None:
        """after= is a position in node-id order, not a handle: a forgotten or unknown id still gives the next nodes."""
        client = await fleet(make_client)
        body = await (await client.get("/api/v1/nodes?limit=10&after=node-bb")).json()
        assert [e["status"]["node_id"] for e in body["nodes"]] == ["node-c", "node-d", "node-e"]
        assert "next_after" not in body

    @pytest.mark.parametrize("limit", ["0", "-1", "x", str(MAX_PAGE_NODES + 1), ""])
    async def test_a_bad_limit_is_a_400_naming_it(self, make_client: MakeClient, limit: str) -> None:
        """A limit outside 1..MAX_PAGE_NODES is refused with 400 bad_request, saying what limit accepts."""
        client = await make_client()
        resp = await client.get(f"/api/v1/nodes?limit={limit}")
        assert resp.status == 400
        body = await resp.json()
        assert body["error"] == "bad_request"
        assert f"limit=1..{MAX_PAGE_NODES}" in body["detail"]
