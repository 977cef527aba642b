"""Auth faults on a real collector with agent and viewer tokens: each wrong key gets 401, is counted, ingests nothing.

The collector, a good agent and an agent with a wrong token run as
subprocesses at DEBUG; afterwards every line they logged is searched for the
tokens. Not here: token parsing (tests/collector/test_cli.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.support.processes import ProcessGroup, get_json, wait_until

AGENT_TOKEN = "agent-tok-5f1c9e2b7d"
VIEWER_TOKEN = "viewer-tok-a83d04c6e1"
WRONG_TOKEN = "wrong-tok-0b9e77aa31"
TOKENS = (AGENT_TOKEN, VIEWER_TOKEN, WRONG_TOKEN)


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for ``token`` (none for None)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


# (endpoint path, websocket?, token presented, metrics endpoint label)
REFUSALS = [
    ("/api/v1/ingest", True, None, "ingest"),
    ("/api/v1/ingest", True, WRONG_TOKEN, "ingest"),
    ("/api/v1/ingest", True, VIEWER_TOKEN, "ingest"),
    ("/api/v1/subscribe", True, None, "subscribe"),
    ("/api/v1/subscribe", True, WRONG_TOKEN, "subscribe"),
    ("/api/v1/subscribe", True, AGENT_TOKEN, "subscribe"),
    ("/api/v1/nodes", False, None, "http"),
    ("/api/v1/nodes", False, AGENT_TOKEN, "http"),
    ("/api/v1/nodes/good", False, WRONG_TOKEN, "http"),
    ("/metrics", False, AGENT_TOKEN, "http"),
]


class TestAuth:
    """Wrong keys are refused before any upgrade, counted, and never logged."""

    @pytest.mark.timeout(60)
    async def test_every_wrong_key_is_refused_counted_and_never_logged(self, procs: ProcessGroup) -> None:
        """No token, a wrong one, or the other kind: 401 with a JSON body, counted; only the good agent is ingested."""
        env = {"NODEWATCH_AGENT_TOKENS": AGENT_TOKEN, "NODEWATCH_VIEWER_TOKENS": VIEWER_TOKEN}
        collector = await asyncio.to_thread(procs.collector, "--log-level", "DEBUG", env=env)
        base = collector.url
        good = procs.agent(base, "good", "--interval", "0.2", env={"NODEWATCH_TOKEN": AGENT_TOKEN})
        bad = procs.agent(base, "intruder", "--interval", "0.2", env={"NODEWATCH_TOKEN": WRONG_TOKEN})
        viewer = bearer(VIEWER_TOKEN)
        async with aiohttp.ClientSession() as session:

            async def good_in() -> bool:
                body = await node_as_viewer(session, base, "good")
                return body is not None and body["status"]["last_seq"] >= 3

            await wait_until(good_in, 30, "the good agent to be ingested")

            async def intruder_refused() -> bool:
                return "HTTP 401" in bad.log_text()

            await wait_until(intruder_refused, 15, "the intruder agent to be refused")
            before = {label: await auth_failures(session, base, label) for label in ("ingest", "subscribe", "http")}
            for path, websocket, token, _ in REFUSALS:
                status, body, headers = await attempt(session, base + path, websocket, token)
                assert status == 401, (path, token)
                assert body["error"] == "unauthorized", (path, body)
                assert headers.get("WWW-Authenticate", "").startswith("Bearer"), path
            after = {label: await auth_failures(session, base, label) for label in before}
            for label, count in before.items():
                expected = sum(1 for *_, lab in REFUSALS if lab == label)
                assert after[label] - count == expected, label
            status, nodes = await get_json(session, f"{base}/api/v1/nodes", viewer)
            assert status == 200
            assert [n["status"]["node_id"] for n in nodes["nodes"]] == ["good"], "an intruder was ingested"
            health_status, _ = await get_json(session, f"{base}/api/v1/health")
            assert health_status == 200, "health needs no token"
        for proc in (good, bad):
            proc.terminate()
        collector.proc.terminate()
        logs = {proc.name: proc.log_text() for proc in procs.procs}
        assert "DEBUG" in logs["collector"] or "DEBUG" in logs["agent-good"]
        for name, text in logs.items():
            for token in TOKENS:
                assert token not in text, f"{name}'s log shows a token"


async def node_as_viewer(session: aiohttp.ClientSession, base: str, node_id: str) -> dict[str, Any] | None:
    """``/api/v1/nodes/{node_id}`` with the viewer token."""
    status, body = await get_json(session, f"{base}/api/v1/nodes/{node_id}", bearer(VIEWER_TOKEN))
    return body if status == 200 else None


async def auth_failures(session: aiohttp.ClientSession, base: str, label: str) -> float:
    """``nodewatch_collector_auth_failures_total{endpoint=label}``, read with the viewer token."""
    async with session.get(f"{base}/metrics", headers=bearer(VIEWER_TOKEN)) as response:
        text = await response.text()
    wanted = f'nodewatch_collector_auth_failures_total{{endpoint="{label}"}}'
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)), 0.0)


async def attempt(
    session: aiohttp.ClientSession, url: str, websocket: bool, token: str | None
) -> tuple[int, dict[str, str], dict[str, str]]:
    """One request (a websocket upgrade when ``websocket``); its status, JSON body and headers."""
    headers = bearer(token)
    if websocket:
        headers |= {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)
