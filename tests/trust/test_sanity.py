"""Issue 13, findings 1, 3, 5a and 5b, against a real collector on loopback: seq, time and rate sanity.

Each test fails on the collector before the trust wiring: there one heartbeat with seq 2**63-1
was acked, a sample stamped an hour ahead stayed the latest forever, the history was sorted by
the agent's stamps, and a connection could send frames as fast as it liked.
"""

from __future__ import annotations

import time
from typing import Any

from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection, send_heartbeat
from tests.support.messages import WALL_T0, heartbeat, hello

SEQ_MAX = 2**63 - 1


async def node(client: Any, node_id: str = "node-a") -> dict[str, Any]:
    """``GET /api/v1/nodes/{node_id}`` as JSON."""
    response = await client.get(f"/api/v1/nodes/{node_id}")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


class TestSeqRange:
    """Finding 1, second half: a seq no clock can explain closes the connection and leaves the node's counters alone."""

    async def test_a_seq_far_beyond_newest_seq_closes_1008_and_counts_nothing_missing(
        self, make_client: MakeClient
    ) -> None:
        """Seq 2**63-1 right after a hello declaring newest_seq 1 gets 1008 seq_out_of_range; last_seq stays 1."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(newest_seq=1))
        assert (await send_heartbeat(ws, heartbeat(1))).seq == 1
        await ws.send_bytes(encode(heartbeat(SEQ_MAX, sampled_at=WALL_T0)))
        error, code, reason = await expect_rejection(ws)
        assert (code, reason) == (1008, "seq_out_of_range")
        assert error is not None
        assert "expected seq at most" in error.detail
        status = (await node(client))["status"]
        assert (status["last_seq"], status["missing_samples"]) == (1, 0)

    async def test_an_agent_without_newest_seq_is_bounded_from_its_first_heartbeat(
        self, make_client: MakeClient
    ) -> None:
        """An older agent's first seq is a baseline (any value after days offline); a jump to 2**63-1 is refused."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello())
        assert (await send_heartbeat(ws, heartbeat(50_000))).seq == 50_000
        for seq in range(50_001, 50_006):  # a backlog replayed at once is fine
            assert (await send_heartbeat(ws, heartbeat(seq))).seq == seq
        await ws.send_bytes(encode(heartbeat(SEQ_MAX, sampled_at=WALL_T0)))
        _, code, reason = await expect_rejection(ws)
        assert (code, reason) == (1008, "seq_out_of_range")

    async def test_the_hello_ack_never_claims_more_than_the_agent_took(self, make_client: MakeClient) -> None:
        """A reconnecting instance declaring newest_seq 3 is acked 3 even though the collector holds 5."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(instance="i-1", newest_seq=5))
        for seq in range(1, 6):
            await send_heartbeat(ws, heartbeat(seq))
        await ws.close()
        _, ack = await connect_agent(client, hello(instance="i-1", newest_seq=3))
        assert ack.seq == 3


class TestTime:
    """Finding 3 and 5b: the agent's sampled_at never decides what is latest, nor the history's order."""

    async def test_a_future_stamp_is_clamped_and_does_not_freeze_the_latest_sample(
        self, make_client: MakeClient
    ) -> None:
        """A sample stamped an hour ahead is shown at most 5 min ahead, and the next sample replaces it as latest."""
        client = await make_client()
        now = time.time()
        ws, _ = await connect_agent(client, hello(sent_at=now, newest_seq=0))
        await send_heartbeat(ws, heartbeat(1, sampled_at=now + 3600, cpu=99.0))
        latest = (await node(client))["last_sample"]
        assert latest["sampled_at"] <= time.time() + 300
        await send_heartbeat(ws, heartbeat(2, sampled_at=time.time(), cpu=5.0))
        body = await node(client)
        assert body["last_sample"]["cpu_percent"] == 5.0
        assert body["status"]["clock_skew_s"] > 3000  # the raw stamp still shows as skew

    async def test_history_is_kept_in_arrival_order_whatever_the_stamps(self, make_client: MakeClient) -> None:
        """Samples with crafted, decreasing stamps are stored in seq order, each appended (no sorted insert)."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(newest_seq=0))
        base = time.time()
        for seq, offset in ((1, 30.0), (2, 20.0), (3, 10.0)):
            await send_heartbeat(ws, heartbeat(seq, sampled_at=base + offset))
        history = (await node(client))["history"]
        assert history["seq"] == [1, 2, 3]


class TestFrameBudget:
    """Finding 5a: one connection cannot send heartbeats much faster than its hello's interval."""

    async def test_a_live_frame_flood_is_closed_with_4430(self, make_client: MakeClient) -> None:
        """At interval 1 s with no backlog declared, about the 31st frame within a moment gets 4430 rate_exceeded."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(newest_seq=1))
        frame = encode(heartbeat(1))  # the same sample again and again: each is a frame to decode and ack
        for _ in range(200):
            await ws.send_bytes(frame)
        error, code, reason = await expect_rejection(ws)
        assert (code, reason) == (4430, "rate_exceeded")
        assert error is not None
        assert "heartbeats/s" in error.detail
        assert (await node(client))["status"]["last_seq"] == 1

    async def test_a_declared_backlog_replays_in_full(self, make_client: MakeClient) -> None:
        """An agent that declares newest_seq 500 may replay all 500 at once: no refusal, everything acked."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(newest_seq=500, ack_every=500))
        for seq in range(1, 501):
            await ws.send_bytes(encode(heartbeat(seq)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (await node(client))["status"]["last_seq"] < 500:
            pass
        assert (await node(client))["status"]["last_seq"] == 500
        assert not ws.closed
