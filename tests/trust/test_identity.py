"""Issue 13, findings 1, 2 and 8, against a real collector on loopback: a node id belongs to its node key.

Each test fails on the collector before the trust wiring: there the instance id was the only
proof of who a node is, so a replayed instance id or a restart race handed the node to anyone
holding the fleet token, and a table full of junk ids refused every new node.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from agent.identity import node_credential
from collector.app import RUNTIME_KEY
from collector.trust.budget import new_node_budget
from collector.trust.gate import HelloGate
from collector.trust.identity import IdentityTable
from shared.codec import encode
from shared.messages import Hello
from tests.support.collector import MakeClient, connect_agent, expect_rejection, send_heartbeat
from tests.support.messages import heartbeat, hello

KEY_A = bytes(range(32))  # the real machine's node key
KEY_B = bytes(range(1, 33))  # someone else's


def cred(key: bytes, node_id: str = "node-a") -> str:
    """The credential an agent with ``key`` sends for ``node_id`` to a collector at 127.0.0.1."""
    return node_credential(key, node_id, "127.0.0.1")


async def node(client: Any, node_id: str = "node-a") -> dict[str, Any]:
    """``GET /api/v1/nodes/{node_id}`` as JSON."""
    response = await client.get(f"/api/v1/nodes/{node_id}")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def refused(client: Any, message: Hello) -> tuple[int | None, str]:
    """Send ``message`` as a hello on a fresh connection; the close code and reason it gets."""
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect("/api/v1/ingest")
    await ws.send_bytes(encode(message))
    error, code, reason = await expect_rejection(ws)
    assert error is not None
    assert error.reason == reason
    return code, reason


class TestBlinding:
    """Finding 1: replaying a node's agent_instance_id no longer takes the node."""

    async def test_instance_replay_without_the_key_is_refused_and_the_real_agent_keeps_streaming(
        self, make_client: MakeClient
    ) -> None:
        """An insider copying the instance id from the API gets 4403 node_key_required; the real agent is untouched."""
        client = await make_client()
        real, _ = await connect_agent(client, hello(instance="inst-real", node_credential=cred(KEY_A), newest_seq=0))
        assert (await send_heartbeat(real, heartbeat(1))).seq == 1
        instance = (await node(client))["status"]["agent_instance_id"]
        assert await refused(client, hello(instance=instance)) == (4403, "node_key_required")
        assert (await send_heartbeat(real, heartbeat(2))).seq == 2
        assert (await node(client))["status"]["last_seq"] == 2

    async def test_instance_replay_with_another_key_is_refused_and_counted(self, make_client: MakeClient) -> None:
        """A hello with the node's instance id but another node key gets 4403 node_key_mismatch, counted in /metrics."""
        client = await make_client()
        real, _ = await connect_agent(client, hello(instance="inst-real", node_credential=cred(KEY_A), newest_seq=0))
        assert await refused(client, hello(instance="inst-real", node_credential=cred(KEY_B))) == (
            4403,
            "node_key_mismatch",
        )
        assert (await send_heartbeat(real, heartbeat(1))).seq == 1
        metrics = await (await client.get("/metrics")).text()
        assert 'reason="node_key_mismatch"' in metrics


class TestSquatting:
    """Finding 2: a node id cannot be taken while its agent restarts, and the agent's own restart is not a 4409."""

    async def test_a_squatter_at_restart_is_refused_and_the_real_agent_gets_its_node_back(
        self, make_client: MakeClient
    ) -> None:
        """After a clean close (offline at once) a squatter's hello gets 4403; the restarted real agent is acked."""
        client = await make_client()
        real, _ = await connect_agent(client, hello(instance="run-1", node_credential=cred(KEY_A), newest_seq=0))
        await send_heartbeat(real, heartbeat(1))
        await real.close()
        assert await refused(client, hello(instance="squat", node_credential=cred(KEY_B))) == (
            4403,
            "node_key_mismatch",
        )
        assert await refused(client, hello(instance="squat-2")) == (4403, "node_key_required")
        again, ack = await connect_agent(client, hello(instance="run-2", node_credential=cred(KEY_A), newest_seq=0))
        assert ack.seq == 0  # a new instance starts afresh
        assert (await send_heartbeat(again, heartbeat(1))).seq == 1
        assert (await node(client))["status"]["agent_instance_id"] == "run-2"

    async def test_a_restarted_agent_with_its_key_replaces_its_own_stale_connection(
        self, make_client: MakeClient
    ) -> None:
        """The same key under a new instance id takes the node over from its half-open old connection (no 4409)."""
        client = await make_client()
        old, _ = await connect_agent(client, hello(instance="run-1", node_credential=cred(KEY_A), newest_seq=0))
        await send_heartbeat(old, heartbeat(1))
        new, ack = await connect_agent(client, hello(instance="run-2", node_credential=cred(KEY_A), newest_seq=0))
        assert ack.seq == 0
        assert (await send_heartbeat(new, heartbeat(1))).seq == 1
        msg = await old.receive(timeout=3.0)
        assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
        status = (await node(client))["status"]
        assert (status["agent_instance_id"], status["connected"]) == ("run-2", True)

    async def test_a_keyless_agent_keeps_the_old_rules(self, make_client: MakeClient) -> None:
        """An agent without a node key (protocol as before) is accepted, and another instance still gets 4409."""
        client = await make_client()
        ws, ack = await connect_agent(client, hello(instance="old-agent"))
        assert ack.seq == 0
        assert await refused(client, hello(instance="other")) == (4409, "duplicate_node")
        assert (await send_heartbeat(ws, heartbeat(1))).seq == 1


class TestNodeTable:
    """Finding 8: junk node ids (hello, close, never a heartbeat) no longer lock real new nodes out."""

    async def test_a_full_table_evicts_a_never_heartbeated_node_for_a_new_one(self, make_client: MakeClient) -> None:
        """With --max-nodes 2 full of hello-and-close junk, a real new node is accepted, not refused with 4503."""
        client = await make_client(max_nodes=2)
        for junk in ("junk-1", "junk-2"):
            ws, _ = await connect_agent(client, hello(junk, instance=junk))
            await ws.close()
        ws, ack = await connect_agent(client, hello("real", instance="real-1", node_credential=cred(KEY_A, "real")))
        assert ack.seq == 0
        assert (await send_heartbeat(ws, heartbeat(1))).seq == 1
        ids = [entry["status"]["node_id"] for entry in (await (await client.get("/api/v1/nodes")).json())["nodes"]]
        assert sorted(ids) == ["junk-2", "real"]

    async def test_a_full_table_of_live_nodes_still_refuses_with_4503(self, make_client: MakeClient) -> None:
        """Nodes that send data are never evicted: a new node past --max-nodes still gets 4503."""
        client = await make_client(max_nodes=1)
        ws, _ = await connect_agent(client, hello("busy", instance="busy-1"))
        await send_heartbeat(ws, heartbeat(1))
        assert await refused(client, hello("late", instance="late-1")) == (4503, "capacity_reached")


class TestHelloBudgets:
    """Finding 2's retry loop and finding 8's junk-id flood are slowed per node id and per agent token."""

    async def test_a_hello_loop_on_one_node_id_is_closed_with_4430(self, make_client: MakeClient) -> None:
        """Ten hellos in a row for one node id are fine; the eleventh within a minute gets 4430 rate_exceeded."""
        client = await make_client()
        for n in range(10):
            ws, _ = await connect_agent(client, hello(instance=f"loop-{n}"))
            await ws.close()
        assert await refused(client, hello(instance="loop-10")) == (4430, "rate_exceeded")

    async def test_new_node_ids_from_one_token_are_budgeted(self, make_client: MakeClient) -> None:
        """With a budget of 3 new node ids, the fourth new id from the same token gets 4430 new_node_rate_exceeded."""
        client = await make_client(agent_tokens=frozenset({"fleet-token"}))
        server: Any = client.server  # a TestServer: it has the app
        runtime = server.app[RUNTIME_KEY]
        runtime.hello_gate.new_nodes = new_node_budget(rate_per_s=0.001, burst=3)
        auth = {"Authorization": "Bearer fleet-token"}
        for n in range(3):
            ws, _ = await connect_agent(client, hello(f"junk-{n}", instance=f"j-{n}"), headers=auth)
            await ws.close()
        ws = await client.ws_connect("/api/v1/ingest", headers=auth)
        await ws.send_bytes(encode(hello("junk-3", instance="j-3")))
        _, code, reason = await expect_rejection(ws)
        assert (code, reason) == (4430, "new_node_rate_exceeded")
        again, _ = await connect_agent(client, hello("junk-0", instance="j-0b"), headers=auth)  # known ids still pass
        await again.close()


class TestKeyTable:
    """The key table cannot be filled for good by node ids that are long gone."""

    async def test_a_full_key_table_drops_keys_of_forgotten_nodes(self, make_client: MakeClient) -> None:
        """With room for 2 keys, a node removed by --forget-after frees its key's slot for a new keyed node."""
        client = await make_client(forget_after_s=0.2)
        server: Any = client.server
        runtime = server.app[RUNTIME_KEY]
        runtime.hello_gate = HelloGate(IdentityTable(max_records=2))
        gone, _ = await connect_agent(client, hello("gone", instance="g", node_credential=cred(KEY_A, "gone")))
        await gone.close()  # offline at once, forgotten 0.2 s later
        await connect_agent(client, hello("stays", instance="s", node_credential=cred(KEY_A, "stays")))

        async def forgotten() -> bool:
            return (await client.get("/api/v1/nodes/gone")).status == 404

        for _ in range(100):
            if await forgotten():
                break
            await asyncio.sleep(0.05)
        _, ack = await connect_agent(client, hello("new", instance="n", node_credential=cred(KEY_B, "new")))
        assert ack.seq == 0
        assert runtime.hello_gate.identity.get("gone") is None
