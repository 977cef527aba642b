"""``nodewatch admin`` against a real collector on loopback: the operator's commands do what the API does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.identity import load_or_create_node_key, node_credential
from nodewatch.admin import main
from tests.support.collector import MakeClient, connect_agent
from tests.support.messages import hello

ENV = {"NODEWATCH_ADMIN_TOKEN": "admin-secret"}


async def run(*argv: str, env: dict[str, str] = ENV) -> int:
    """``nodewatch admin ARGV`` in a thread (it blocks on urllib), as an operator's shell would run it."""
    return await asyncio.to_thread(main, list(argv), env)


class TestAdminCli:
    async def test_fingerprint_on_the_node_then_pin_on_the_collector(
        self, make_client: MakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The fingerprint printed from the agent's state dir is the one the collector records for that agent."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        base = str(client.make_url("/")).rstrip("/")
        key = load_or_create_node_key(tmp_path / "state")
        credential = node_credential(key, "web-01", "127.0.0.1")
        await connect_agent(client, hello("web-01", node_credential=credential, newest_seq=0))
        assert (
            await run("--collector", base, "fingerprint", "--state-dir", str(tmp_path / "state"), "--node-id", "web-01")
            == 0
        )
        printed = capsys.readouterr().out.strip()
        assert await run("--collector", base, "keys") == 0
        [record] = json.loads(capsys.readouterr().out)["keys"]
        assert record["fingerprint"] == printed
        assert await run("--collector", base, "pin", "web-02", printed) == 0
        assert json.loads(capsys.readouterr().out)["node_id"] == "web-02"

    async def test_a_refusal_is_exit_1_with_the_collectors_reason(
        self, make_client: MakeClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Forgetting an unknown node exits 1 and prints the collector's detail; no admin token configured is 403."""
        client = await make_client(admin_tokens=frozenset({"admin-secret"}))
        base = str(client.make_url("/")).rstrip("/")
        assert await run("--collector", base, "forget", "nobody") == 1
        assert "404" in capsys.readouterr().err
        closed = await make_client()
        assert await run("--collector", str(closed.make_url("/")).rstrip("/"), "rotate-key", "web-01") == 1
        assert "403" in capsys.readouterr().err
