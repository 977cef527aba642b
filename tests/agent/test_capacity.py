"""The agent against a real collector that is full: close 4503 after the hello, HTTP 503 before the upgrade.

A full collector must not be hammered (each attempt is spaced by the backoff,
and a 503's Retry-After is the least delay), and the agent must lose nothing
while it waits: samples stay in the backlog and reach the history once it gets in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from agent.config import AgentConfig
from agent.pusher import Outcome
from agent.runner import Agent
from collector.admission import AdmissionSite
from collector.app import RUNTIME_KEY, CollectorRuntime, create_app
from collector.config import CollectorConfig
from shared.codec import encode
from shared.retry import CAPACITY_DELAY_S
from tests.support.messages import hello

from .ingest_server import running, wait_until

NODE = "full-node"
WINDOW_S = 1.0  # the bounded time in which refused attempts are counted


FORGET_AFTER_S = 0.5  # the collector forgets an offline node this soon, so a test can free the one slot


@dataclass
class FullCollector:
    """A running collector whose one node slot another node holds."""

    runtime: CollectorRuntime
    port: int
    other: aiohttp.ClientWebSocketResponse  # the connection of the node that holds the one slot

    async def free_the_slot(self) -> None:
        """The other node says goodbye (offline at once) and the collector forgets it FORGET_AFTER_S later."""
        await self.other.close()
        await wait_until(lambda: "other-node" not in self.runtime.cache)


@asynccontextmanager
async def full_collector(*, admission_limit: int | None = None) -> AsyncIterator[FullCollector]:
    """A real collector with ``max_nodes=1`` whose one slot "other-node" holds.

    With ``admission_limit``, it listens behind the ``AdmissionSite`` the CLI uses, so once that many
    connections are open (the other node's is one) a new ingest request gets the canned 503.
    """
    app = create_app(CollectorConfig(host="127.0.0.1", port=0, max_nodes=1, forget_after_s=FORGET_AFTER_S))
    runtime = app[RUNTIME_KEY]
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site: web.TCPSite = (
        web.TCPSite(runner, "127.0.0.1", 0)
        if admission_limit is None
        else AdmissionSite(runner, "127.0.0.1", 0, limit=admission_limit, on_refused=runtime.refused_busy)
    )
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            other = await session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ingest", heartbeat=None)
            await other.send_bytes(encode(hello("other-node", "other-instance")))
            ack = await other.receive(timeout=5.0)
            assert ack.type is aiohttp.WSMsgType.BINARY
            assert "other-node" in runtime.cache
            yield FullCollector(runtime, port, other)
            await other.close()
    finally:
        await runner.cleanup()


def make_agent(port: int, random_value: float) -> tuple[Agent, list[tuple[float, Outcome]]]:
    """An agent sampling every 0.1 s with a fixed random source, recording every delay its Backoff returned."""
    retries: list[tuple[float, Outcome]] = []
    config = AgentConfig(ingest_url=f"ws://127.0.0.1:{port}/api/v1/ingest", node_id=NODE, interval_s=0.1)
    agent = Agent(config, random_source=lambda: random_value, on_retry=lambda d, o: retries.append((d, o)))
    return agent, retries


def history_seqs(runtime: CollectorRuntime) -> list[int]:
    record = runtime.cache.get(NODE)
    return [] if record is None else list(record.history.to_history().seq)


class TestNodeCapReached:
    @pytest.mark.slow
    async def test_4503_waits_the_tables_delay_keeps_samples_and_gets_in_later(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Refused with 4503, the agent waits at least 15 s (shared.retry) plus jitter, drops nothing, then replays."""
        refusals = ("ingest", "capacity_reached")
        async with full_collector() as full:
            runtime = full.runtime
            agent, retries = make_agent(full.port, random_value=0.1)
            with caplog.at_level(logging.WARNING, logger="agent.pusher"):
                async with running(agent):
                    await wait_until(lambda: bool(retries))
                    await asyncio.sleep(WINDOW_S)
                    # A tight loop would make hundreds of attempts; the floor allows one.
                    assert runtime.stats.protocol_errors[refusals] == 1
                    [(delay, outcome)] = retries
                    assert delay == pytest.approx(CAPACITY_DELAY_S + 0.1 * 0.5)  # floor + random() * first ceiling
                    assert outcome.close_code == 4503
                    assert outcome.busy
                    assert not outcome.refused
                    assert agent.pusher.connections == 0
                    # Nothing was acked and nothing overflowed: every sample taken so far is still held.
                    assert agent.seq >= 5
                    assert agent.backlog.dropped == 0
                    assert len(agent.backlog) == agent.seq

                    await full.free_the_slot()
                    freed_at = agent.seq
                    await wait_until(
                        lambda: len(history_seqs(runtime)) >= freed_at + 5, timeout_s=CAPACITY_DELAY_S + 10
                    )
        seqs = history_seqs(runtime)
        assert seqs == list(range(1, len(seqs) + 1))  # every sample taken while refused arrived, no gap
        record = runtime.cache.get(NODE)
        assert record is not None
        assert record.dropped_samples == 0
        assert record.missing_samples == 0
        assert agent.pusher.connections == 1
        assert runtime.stats.protocol_errors[refusals] == 1
        capacity_lines = [r.getMessage() for r in caplog.records if "code 4503" in r.getMessage()]
        assert len(capacity_lines) == 1
        assert "(collector at capacity: waiting at least 15 s)" in capacity_lines[0]


class TestConnectionLimitReached:
    async def test_503_is_logged_and_retry_after_is_the_least_delay(self, caplog: pytest.LogCaptureFixture) -> None:
        """Past the connection limit the agent gets HTTP 503 with Retry-After: 5 and waits 5 s plus jitter."""
        async with full_collector(admission_limit=1) as full:
            runtime = full.runtime
            agent, retries = make_agent(full.port, random_value=0.2)
            with caplog.at_level(logging.WARNING, logger="agent.pusher"):
                async with running(agent):
                    await wait_until(lambda: bool(retries))
                    # Without the floor the next attempt would come 0.1 s later.
                    await asyncio.sleep(WINDOW_S)
                    assert runtime.stats.protocol_errors[("ingest", "connection_limit")] == 1
                    assert len(retries) == 1
                    assert agent.backlog.dropped == 0
                    assert len(agent.backlog) == agent.seq
        delay, outcome = retries[0]
        assert outcome.reason.startswith("HTTP 503")
        assert outcome.retry_after_s == 5.0
        assert outcome.busy
        assert not outcome.refused
        assert delay == pytest.approx(5.0 + 0.2 * 0.5)  # floor + random() * first ceiling
        assert runtime.stats.connections_total["ingest"] == 1  # the other node only: no upgrade for us
        assert NODE not in runtime.cache
        lines = [r.getMessage() for r in caplog.records if "HTTP 503" in r.getMessage()]
        assert len(lines) == 1
        assert "retrying in 5.1 s (collector at capacity: Retry-After 5 s)" in lines[0]


@asynccontextmanager
async def busy_endpoint(status: int, retry_after: str) -> AsyncIterator[int]:
    """Not the collector: a server (a proxy, say) that answers every ingest request with ``status`` + Retry-After."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": "busy"}, status=status, headers={"Retry-After": retry_after})

    app = web.Application()
    app.router.add_get("/api/v1/ingest", refuse)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


class TestRetryAfterValues:
    @pytest.mark.parametrize(
        ("status", "header", "floor"),
        [
            (429, "2", 2.0),
            (503, "99999", 300.0),
            (503, "soon", CAPACITY_DELAY_S),
            (503, "Wed, 21 Oct 2015 07:28:00 GMT", CAPACITY_DELAY_S),
        ],
    )
    async def test_header_reaches_the_backoff(self, status: int, header: str, floor: float) -> None:
        """aiohttp hands the 503/429 headers over; huge values are capped at 5 min; garbage means the table's delay."""
        async with busy_endpoint(status, header) as port:
            agent, retries = make_agent(port, random_value=1.0)
            async with running(agent):
                await wait_until(lambda: bool(retries))
        delay, outcome = retries[0]
        assert outcome.reason.startswith(f"HTTP {status}")
        assert delay == pytest.approx(floor + 0.5)
        assert agent.pusher.backoff.last_floor_s == floor
