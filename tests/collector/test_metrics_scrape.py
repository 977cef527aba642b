"""A Prometheus scrape of a big fleet must not freeze ingest: the exposition is rendered off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from collector.app import RUNTIME_KEY, CollectorRuntime, create_app
from collector.config import CollectorConfig
from shared.codec import encode
from tests.support.collector import FAST, connect_agent, send_heartbeat
from tests.support.messages import WALL_T0, heartbeat, hello

FLEET = 5000  # rendering this many nodes takes far longer than one heartbeat's round trip


async def test_heartbeats_are_acked_while_a_scrape_renders(aiohttp_client: Any) -> None:
    """While /metrics renders 5,000 nodes, a live agent's heartbeat is applied and acked; the scrape is whole."""
    settings: dict[str, Any] = dict(FAST)
    client = await aiohttp_client(create_app(CollectorConfig(**settings, max_nodes=FLEET + 10)))
    runtime: CollectorRuntime = client.server.app[RUNTIME_KEY]
    loop = asyncio.get_running_loop()
    for i in range(FLEET):
        node_id = f"fleet-{i:05d}"
        runtime.cache.hello(hello(node_id, f"inst-{i}"), conn=10_000 + i, now=loop.time(), wall=WALL_T0)
        sample = heartbeat(1)
        runtime.cache.heartbeat(node_id, 10_000 + i, sample, loop.time(), WALL_T0, frame=encode(sample))
    ws, _ = await connect_agent(client, hello("live", "inst-live"))

    scrape = asyncio.create_task(client.get("/metrics"))
    await asyncio.sleep(0.05)  # the handler has taken its snapshot and handed the rendering to a thread
    assert not scrape.done()
    ack = await send_heartbeat(ws, heartbeat(1))
    assert ack.seq == 1
    assert not scrape.done(), "the heartbeat had to wait for the scrape: rendering blocked the event loop"

    resp = await scrape
    assert resp.status == 200
    text = await resp.text()
    assert text.count("nodewatch_node_connected{") == FLEET + 1
    assert 'nodewatch_node_cpu_usage_ratio{node="fleet-04999"} 0.1' in text
    await ws.close()
