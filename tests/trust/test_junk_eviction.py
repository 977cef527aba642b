"""A full node table evicts a flooder's junk ids (a hello, a few frames, then 4430) for a new node (finding 8).

Against a real collector on loopback. Fails on the code before, where the eviction candidates
carried no sample count: ids that had sent a few heartbeats counted as real nodes' outages and
kept their slots for 10 minutes, so every new node got 4503 ``capacity_reached``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection
from tests.support.messages import heartbeat, hello

MAX_NODES = 20
# One token per junk id: from one address and token the flooder would itself get the refusal cooldown's 429
# after five refusals (tests/trust/test_refusal_penalty.py), which is not what this test is about.
FLOOD_TOKENS = [f"flood-{index:02d}-" + "f" * 24 for index in range(MAX_NODES)]
NEW_TOKEN = "fresh-" + "n" * 26


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _offline(client: Any) -> int:
    health = await (await client.get("/api/v1/health")).json()
    return int(health["nodes"]["offline"])


async def test_a_new_node_is_acked_when_junk_ids_that_heartbeated_fill_the_table(make_client: MakeClient) -> None:
    """Twenty ids each send a hello and 12 heartbeats (4430 after 10); a new node's hello is then acked."""
    client = await make_client(max_nodes=MAX_NODES, agent_tokens=frozenset({*FLOOD_TOKENS, NEW_TOKEN}))
    for index in range(MAX_NODES):
        ws, _ = await connect_agent(
            client, hello(node_id=f"junk-{index}", interval_s=0.05, newest_seq=0), _auth(FLOOD_TOKENS[index])
        )
        for _ in range(12):
            await ws.send_bytes(encode(heartbeat(1)))
        _, code, _ = await expect_rejection(ws)
        assert code == 4430
    async with asyncio.timeout(10):  # the junk ids go offline within a few of their 50 ms intervals
        while await _offline(client) < MAX_NODES:  # noqa: ASYNC110 - polls another process's view, no event to wait on
            await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)
    ws, ack = await connect_agent(client, hello(node_id="real-new-node"), _auth(NEW_TOKEN))
    assert ack.seq == 0
    health = await (await client.get("/api/v1/health")).json()
    assert health["nodes"]["total"] == MAX_NODES
    await ws.close()
