"""A whole fleet may register with a fresh collector at once; refusals in a storm write few log lines.

Regression: the new-node budget per agent token (600 in a row, then 10 a second) held a
10,000-node fleet's first start to ~16 minutes of 4430 retries against a fresh collector, and
every refusal wrote its own WARNING line.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection
from tests.support.messages import hello

FLEET = 700  # more than the old burst of 600


async def test_a_fleet_larger_than_the_old_burst_registers_at_once(make_client: MakeClient) -> None:
    """700 new nodes from one token, saying hello within a second or two, are all acked by a fresh collector."""
    client = await make_client(max_nodes=1000)

    async def register(i: int) -> None:
        ws, _ = await connect_agent(client, hello(node_id=f"n-{i:04d}", instance=f"i-{i}"))
        await ws.close()

    batch = 50  # the test client's connection pool holds 100
    for start in range(0, FLEET, batch):
        await asyncio.gather(*(register(i) for i in range(start, start + batch)))
    health = await (await client.get("/api/v1/health")).json()
    assert health["nodes"]["total"] == FLEET


async def test_a_refusal_storm_logs_a_line_a_second_not_a_line_each(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Fifty hellos over --max-nodes are each refused 4503 and counted, with one or two log lines."""
    client = await make_client(max_nodes=1)
    first, _ = await connect_agent(client, hello(node_id="held", instance="i-held"))
    caplog.set_level(logging.WARNING, logger="nodewatch.collector")

    async def refuse(i: int) -> int | None:
        ws: aiohttp.ClientWebSocketResponse = await client.ws_connect("/api/v1/ingest")
        await ws.send_bytes(encode(hello(node_id=f"extra-{i}", instance=f"x-{i}")))
        _, code, _ = await expect_rejection(ws)
        return code

    codes = await asyncio.gather(*(refuse(i) for i in range(50)))
    await first.close()
    assert codes == [4503] * 50
    lines = [r for r in caplog.records if "capacity_reached" in r.getMessage()]
    assert 1 <= len(lines) <= 3
    metrics = await (await client.get("/metrics")).text()
    assert 'nodewatch_collector_protocol_errors_total{endpoint="ingest",reason="capacity_reached"} 50.0' in metrics
