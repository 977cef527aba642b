"""A fresh ingest connection starts with a small burst (docs/security.md, 3.3), so reconnecting does not refill a flood.

Against a real collector on loopback. Fails on the code before, where each new connection could
send 30 s of frames at once: a flooder that took a fresh node id every time it was refused got
600 frames a connection at interval 0.05 s, and honest agents' ack p99 went from 4 to 107 ms
(bench/faults.py, "One flooding connection").
"""

from __future__ import annotations

from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection, send_heartbeat
from tests.support.messages import heartbeat, hello

FRESH_BURST = 10  # collector.trust.budget.MIN_BURST_FRAMES


async def test_a_fresh_connection_flooding_is_refused_after_ten_frames(make_client: MakeClient) -> None:
    """Twenty frames sent at once on a new connection (interval 1 s): 4430 rate_exceeded after the tenth."""
    client = await make_client()
    ws, _ = await connect_agent(client, hello(node_id="flooder", newest_seq=0))
    for _ in range(2 * FRESH_BURST):
        await ws.send_bytes(encode(heartbeat(1)))  # duplicates: the seq guard lets them by, the frame budget does not
    _, code, reason = await expect_rejection(ws)
    assert (code, reason) == (4430, "rate_exceeded")
    health = await (await client.get("/api/v1/health")).json()
    assert health["nodes"]["total"] == 1


async def test_an_honest_agent_sending_its_first_frames_is_acked(make_client: MakeClient) -> None:
    """An agent that sends a few heartbeats right after its hello, as a reconnecting agent does, is acked."""
    client = await make_client()
    ws, _ = await connect_agent(client, hello(node_id="honest", newest_seq=0))
    acks = [(await send_heartbeat(ws, heartbeat(seq))).seq for seq in range(1, 4)]
    assert acks == [1, 2, 3]
    await ws.close()
