"""The agent against the real collector (collector.app.create_app) on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.config import AgentConfig
from agent.runner import Agent
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig

from .ingest_server import running, wait_until

REPO = Path(__file__).resolve().parents[2]


class RealCollector:
    """One real collector app on 127.0.0.1; a new instance on the same port is a restarted collector."""

    def __init__(self) -> None:
        self.app = create_app(CollectorConfig(host="127.0.0.1", port=0))
        self.runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        self.port = 0

    async def start(self, port: int = 0) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.runner.cleanup()

    def history_seqs(self, node_id: str) -> list[int]:
        """The seqs in the collector's history for ``node_id``, read from its cache (works after stop too)."""
        record = self.app[RUNTIME_KEY].cache.get(node_id)
        return [] if record is None else list(record.history.to_history().seq)


async def get_node(session: aiohttp.ClientSession, port: int, node_id: str) -> dict[str, Any] | None:
    async with session.get(f"http://127.0.0.1:{port}/api/v1/nodes/{node_id}") as response:
        if response.status == 404:
            return None
        body: dict[str, Any] = await response.json()
        return body


def make_agent(port: int) -> Agent:
    config = AgentConfig(ingest_url=f"ws://127.0.0.1:{port}/api/v1/ingest", node_id="real-node", interval_s=0.1)
    return Agent(config, random_source=lambda: 0.2)


class TestRealCollector:
    async def test_online_with_full_history_then_offline_on_stop(self) -> None:
        """The node is online with every seq in its history; stopping the agent makes it offline, agent_closed."""
        collector = RealCollector()
        await collector.start()
        agent = make_agent(collector.port)
        try:
            async with aiohttp.ClientSession() as session:
                async with running(agent):
                    await wait_until(lambda: len(collector.history_seqs("real-node")) >= 10)
                    node = await get_node(session, collector.port, "real-node")
                    assert node is not None
                    assert node["status"]["state"] == "online"
                    assert node["facts"]["memory_total_bytes"] > 0
                    seqs = node["history"]["seq"]
                    assert seqs == list(range(1, len(seqs) + 1))
                await wait_until(lambda: not collector.app[RUNTIME_KEY].agents, timeout_s=2.0)
                node = await get_node(session, collector.port, "real-node")
                assert node is not None
                assert node["status"]["state"] == "offline"
                assert node["status"]["reason"] == "agent_closed"
                assert node["status"]["missing_samples"] == 0
        finally:
            await collector.stop()

    async def test_restart_loses_no_sample(self) -> None:
        """Across a collector restart, the two collectors' histories hold every seq and the new one has no gap."""
        first = RealCollector()
        await first.start()
        agent = make_agent(first.port)
        second = RealCollector()
        try:
            async with running(agent):
                await wait_until(lambda: len(first.history_seqs("real-node")) >= 5)
                await first.stop()
                down_at = agent.seq
                await wait_until(lambda: agent.seq >= down_at + 5)
                await second.start(first.port)
                await wait_until(lambda: (second.history_seqs("real-node") or [0])[-1] >= down_at + 10)
        finally:
            await second.stop()
        before, after = first.history_seqs("real-node"), second.history_seqs("real-node")
        assert after == list(range(after[0], after[-1] + 1))
        assert after[0] <= before[-1] + 1
        assert set(range(1, after[-1] + 1)) <= set(before) | set(after)

    async def test_sigterm_marks_node_offline_at_once(self) -> None:
        """SIGTERM on a real agent process makes the real collector mark the node offline, reason agent_closed."""
        collector = RealCollector()
        await collector.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nodewatch",
            "agent",
            "--collector",
            f"http://127.0.0.1:{collector.port}",
            "--interval",
            "0.1",
            "--node-id",
            "term-node",
            cwd=REPO,
            env=dict(os.environ),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_until(lambda: len(collector.history_seqs("term-node")) >= 3, timeout_s=30.0)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(2.0):
                assert await proc.wait() == 0
            async with aiohttp.ClientSession() as session:
                node = await get_node(session, collector.port, "term-node")
            assert node is not None
            assert node["status"]["state"] == "offline"
            assert node["status"]["reason"] == "agent_closed"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await collector.stop()
