"""Agent tokens scoped to node-id patterns (docs/security.md, 3.1): one team's token cannot register another's nodes.

Against a real collector on loopback. Each test fails on the code before scopes, where a token-file
line ``TOKEN web-*`` was one token spelled with a space, so the agent carrying ``TOKEN`` got 401.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from collector.trust.budget import new_node_budget
from collector.trust.gate import HelloGate
from collector.trust.identity import Accept
from collector.trust.refusal import Refusal
from shared.codec import encode
from tests.support.collector import MakeClient, connect_agent, expect_rejection
from tests.support.messages import hello
from tests.support.processes import ProcessGroup, protocol_errors

WEB = "tok-web"
ALL = "tok-all"
SCOPED_LINES = frozenset({f"{WEB}  web-*,db-??", ALL})


def bearer(token: str) -> dict[str, str]:
    """The ingest upgrade's Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class TestScopedTokens:
    """A scoped token speaks for the node ids its patterns match, and is refused 4403 for any other."""

    @pytest.mark.parametrize("node_id", ["web-01", "web-eu-7", "db-01"])
    async def test_a_node_id_inside_the_patterns_is_acked(self, make_client: MakeClient, node_id: str) -> None:
        """A hello for a node id that a pattern of its token matches is acked."""
        client = await make_client(agent_tokens=SCOPED_LINES)
        ws, ack = await connect_agent(client, hello(node_id=node_id), headers=bearer(WEB))
        assert ack.seq == 0
        await ws.close()

    @pytest.mark.parametrize("node_id", ["db-001", "mail-01", "Web-01", "xweb-01"])
    async def test_a_node_id_outside_the_patterns_gets_4403(self, make_client: MakeClient, node_id: str) -> None:
        """A hello for a node id outside its token's patterns is refused 4403 node_id_not_allowed, and counted."""
        client = await make_client(agent_tokens=SCOPED_LINES)
        ws = await client.ws_connect("/api/v1/ingest", headers=bearer(WEB))
        await ws.send_bytes(encode(hello(node_id=node_id)))
        error, code, reason = await expect_rejection(ws)
        assert (code, reason) == (4403, "node_id_not_allowed")
        assert error is not None
        assert "web-*,db-??" in error.detail
        health = await (await client.get("/api/v1/health")).json()
        assert health["nodes"]["total"] == 0  # the refused hello left no node behind
        metrics = await (await client.get("/metrics")).text()
        assert (
            'nodewatch_collector_protocol_errors_total{endpoint="ingest",reason="node_id_not_allowed"} 1.0' in metrics
        )

    async def test_an_unscoped_line_still_speaks_for_any_node(self, make_client: MakeClient) -> None:
        """A token line without patterns (the old format) is acked for any node id, next to scoped lines."""
        client = await make_client(agent_tokens=SCOPED_LINES)
        ws, _ = await connect_agent(client, hello(node_id="mail-01"), headers=bearer(ALL))
        await ws.close()

    def test_each_token_has_its_own_new_node_budget(self) -> None:
        """New node ids are budgeted per token label: one team's registrations do not use up another's."""
        gate = HelloGate(new_nodes=new_node_budget(burst=1))
        first = gate.admit("web-01", None, known=False, peer="p", label="token-0", now=0.0, wall=0.0)
        second = gate.admit("web-02", None, known=False, peer="p", label="token-0", now=0.0, wall=0.0)
        other = gate.admit("mail-01", None, known=False, peer="p", label="token-1", now=0.0, wall=0.0)
        assert isinstance(first, Accept)
        assert isinstance(other, Accept)
        assert isinstance(second, Refusal)
        assert second.reason.value == "new_node_rate_exceeded"


class TestTokenFile:
    """The collector reads scopes from --agent-token-file, and refuses to start on a bad pattern."""

    async def test_a_real_collector_refuses_an_agent_outside_its_scope(self, tmp_path: Path) -> None:
        """``nodewatch collector --agent-token-file`` with a scoped line: in scope acked, out of scope 4403."""
        tokens = tmp_path / "agent-tokens"
        tokens.write_text(f"# team web\n{WEB}\tweb-*\n{ALL}\n")
        group = ProcessGroup(tmp_path)
        try:
            collector = await asyncio.to_thread(group.collector, "--agent-token-file", str(tokens))
            url = collector.url + "/api/v1/ingest"
            async with aiohttp.ClientSession() as session:
                for node_id, token, expected in (("web-1", WEB, None), ("db-1", WEB, 4403), ("db-1", ALL, None)):
                    async with session.ws_connect(url, headers=bearer(token)) as ws:
                        await ws.send_bytes(encode(hello(node_id=node_id)))
                        msg = await ws.receive(timeout=5)
                        if expected is None:
                            assert msg.type is aiohttp.WSMsgType.BINARY  # the hello's ack
                        else:
                            while msg.type is aiohttp.WSMsgType.BINARY:  # the Error frame, then the close
                                msg = await ws.receive(timeout=5)
                            assert (msg.data, msg.extra) == (expected, "node_id_not_allowed")
                refused = await protocol_errors(session, collector.url, "ingest", "node_id_not_allowed")
            assert refused == 1
        finally:
            group.close()

    def test_a_bad_pattern_stops_the_collector_naming_the_option(self, tmp_path: Path) -> None:
        """A pattern with characters no node id has is refused at start (exit 2), naming the option, not the token."""
        tokens = tmp_path / "agent-tokens"
        tokens.write_text("sekrit web/[a-z]*\n")
        group = ProcessGroup(tmp_path)
        try:
            status, output = group.collector_refusal("--agent-token-file", str(tokens))
        finally:
            group.close()
        assert status == 2
        assert "--agent-token-file: expected node-id patterns" in output
        assert "sekrit" not in output
