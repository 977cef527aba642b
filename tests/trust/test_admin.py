"""The admin API against a real collector on loopback: forget a node, rotate or pin its key, list keys.

These are the operator's answers to issue 13's findings 2 and 8 (a squatter, a reinstalled machine,
a decommissioned node); before them ``--forget-after`` was the only way a node id was ever freed.
"""

from __future__ import annotations

from typing import Any

from agent.identity import fingerprint, node_credential
from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection, send_heartbeat
from tests.support.messages import heartbeat, hello

ADMIN = {"Authorization": "Bearer admin-secret"}
KEY_REAL = bytes(range(32))
KEY_SQUAT = bytes(range(1, 33))
KEY_NEW = bytes(range(2, 34))


def cred(key: bytes, node_id: str = "node-a") -> str:
    """The credential an agent with ``key`` sends for ``node_id`` to a collector at 127.0.0.1."""
    return node_credential(key, node_id, "127.0.0.1")


async def refusal(client: Any, **fields: Any) -> tuple[int | None, str]:
    """A hello with ``fields`` on a fresh connection: the close code and reason it is refused with."""
    ws = await client.ws_connect("/api/v1/ingest")
    await ws.send_bytes(encode(hello(**fields)))
    _, code, reason = await expect_rejection(ws)
    return code, reason


class TestAdminAuth:
    """Operator actions are never open to whoever reaches the port."""

    async def test_without_an_admin_token_every_admin_endpoint_is_403(self, make_client: MakeClient) -> None:
        """No --admin-token-file: listing, forgetting, rotating and pinning all answer 403."""
        client = await make_client()
        for method, path in (
            ("GET", "/api/v1/keys"),
            ("DELETE", "/api/v1/nodes/node-a"),
            ("POST", "/api/v1/nodes/node-a/rotate-key"),
            ("PUT", "/api/v1/nodes/node-a/key"),
        ):
            response = await client.request(method, path, headers=ADMIN)
            assert response.status == 403, (method, path)
            assert (await response.json())["error"] == "forbidden"

    async def test_a_wrong_admin_token_is_401(self, make_client: MakeClient) -> None:
        """With an admin token configured, another token gets 401 and nothing changes."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        response = await client.get("/api/v1/keys", headers={"Authorization": "Bearer nope"})
        assert response.status == 401


class TestKeyOperations:
    """What an operator does when a node's key is lost, stolen or squatted."""

    async def test_keys_lists_fingerprints_only(self, make_client: MakeClient) -> None:
        """GET /api/v1/keys shows each node's fingerprint, which the agent can print too; never the credential."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        await connect_agent(client, hello(node_credential=cred(KEY_REAL), newest_seq=0))
        body = await (await client.get("/api/v1/keys", headers=ADMIN)).json()
        [key] = body["keys"]
        assert (key["node_id"], key["fingerprint"]) == ("node-a", fingerprint(cred(KEY_REAL)))
        assert cred(KEY_REAL) not in str(body)

    async def test_rotate_accepts_a_reinstalled_machines_new_key_once(self, make_client: MakeClient) -> None:
        """After rotate-key, a reinstalled machine's new key is accepted once; the old key is then refused."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        ws, _ = await connect_agent(client, hello(instance="old", node_credential=cred(KEY_REAL), newest_seq=0))
        await ws.close()
        assert await refusal(client, instance="new", node_credential=cred(KEY_NEW)) == (4403, "node_key_mismatch")
        assert (await client.post("/api/v1/nodes/node-a/rotate-key", headers=ADMIN)).status == 200
        ws, _ = await connect_agent(client, hello(instance="new", node_credential=cred(KEY_NEW), newest_seq=0))
        assert (await send_heartbeat(ws, heartbeat(1))).seq == 1
        await ws.close()
        assert await refusal(client, instance="old-2", node_credential=cred(KEY_REAL)) == (4403, "node_key_mismatch")

    async def test_pin_evicts_a_squatter_and_admits_the_real_machine(self, make_client: MakeClient) -> None:
        """A squatter that registered the node id first is dropped by a pin; the real agent's key then gets in."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        squatter, _ = await connect_agent(client, hello(instance="sq", node_credential=cred(KEY_SQUAT), newest_seq=0))
        body = {"fingerprint": fingerprint(cred(KEY_REAL))}
        assert (await client.put("/api/v1/nodes/node-a/key", json=body, headers=ADMIN)).status == 200
        await squatter.receive(timeout=3)  # dropped
        assert await refusal(client, instance="sq-2", node_credential=cred(KEY_SQUAT)) == (4403, "node_key_mismatch")
        real, _ = await connect_agent(client, hello(instance="real", node_credential=cred(KEY_REAL), newest_seq=0))
        assert (await send_heartbeat(real, heartbeat(1))).seq == 1

    async def test_a_malformed_pin_is_400(self, make_client: MakeClient) -> None:
        """A pin whose body is not {"fingerprint": "SHA256:..."} is refused with 400 and the reason."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        response = await client.put("/api/v1/nodes/node-a/key", data=b"\xff", headers=ADMIN)
        assert response.status == 400
        response = await client.put("/api/v1/nodes/node-a/key", json={"fingerprint": "MD5:x"}, headers=ADMIN)
        assert response.status == 400
        assert "SHA256" in (await response.json())["detail"]

    async def test_forget_frees_a_decommissioned_node_id(self, make_client: MakeClient) -> None:
        """DELETE forgets the node and its key: it leaves the node list, and a new machine may claim the id."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        ws, _ = await connect_agent(client, hello(instance="old", node_credential=cred(KEY_REAL), newest_seq=0))
        await ws.close()
        response = await client.delete("/api/v1/nodes/node-a", headers=ADMIN)
        assert response.status == 200
        assert (await response.json())["key_forgotten"] is True
        assert (await (await client.get("/api/v1/nodes")).json())["nodes"] == []
        _, ack = await connect_agent(client, hello(instance="next", node_credential=cred(KEY_NEW), newest_seq=0))
        assert ack.seq == 0
        assert (await client.delete("/api/v1/nodes/nobody", headers=ADMIN)).status == 404
