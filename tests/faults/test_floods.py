"""Floods against a real collector process: connection storms, silent handshakes, huge headers, reconnect loops.

The collector must keep answering ``/api/v1/health`` throughout (we assert
that it answers, never how fast) and must not die. The bench version
(``bench/faults.py``) opens 5,000 connections; this one 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp

from shared.codec import encode
from tests.support.messages import hello
from tests.support.processes import (
    CollectorProc,
    HealthProbe,
    ProcessGroup,
    get_json,
    health,
    protocol_errors,
    rss_bytes,
    storm,
    wait_until,
)

HELLO_TIMEOUT_S = 1.0


@asynccontextmanager
async def probing(base: str) -> AsyncIterator[HealthProbe]:
    """Run a HealthProbe for the duration of the block, then check it always answered."""
    probe = HealthProbe(base)
    task = asyncio.create_task(probe.run())
    try:
        yield probe
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert probe.failures == [], probe.failures[:5]
    assert probe.answered >= 1


async def collector_ok(proc: CollectorProc) -> None:
    """The collector still runs and answers health with 200."""
    assert proc.proc.alive(), proc.proc.log_text()[-2000:]
    async with aiohttp.ClientSession() as session:
        body = await health(session, proc.url)
    assert body["status"] in {"ok", "degraded"}


async def flood_collector(procs: ProcessGroup) -> CollectorProc:
    """A collector with a 1 s hello timeout (bench._collector_proc)."""
    return await asyncio.to_thread(procs.collector, "--hello-timeout", str(HELLO_TIMEOUT_S), launcher=True)


async def repeat(times: int, action: Callable[[int], Awaitable[None]]) -> None:
    """Run ``action(i)`` ``times`` times, 50 at a time."""
    for start in range(0, times, 50):
        await asyncio.gather(*(action(i) for i in range(start, min(times, start + 50))))


class TestFloods:
    """Abuse that costs the attacker little; the collector must keep serving health."""

    async def test_connection_storm(self, procs: ProcessGroup) -> None:
        """500 connections opened at once and dropped (FIN or RST, some mid-request): health answers throughout."""
        collector = await flood_collector(procs)
        async with probing(collector.url):
            opened = await storm(collector.port, 500)
            await asyncio.sleep(0.5)
        assert opened >= 450
        await collector_ok(collector)

    async def test_handshakes_that_never_say_hello(self, procs: ProcessGroup) -> None:
        """30 upgraded sockets that send nothing are each closed with 1008 hello_timeout and counted.

        30: under the 32 idle sockets one address may hold (collector.admission); the 33rd gets a 429.
        """
        collector = await flood_collector(procs)
        url = collector.url.replace("http://", "ws://") + "/api/v1/ingest"
        codes: list[int | None] = []
        async with aiohttp.ClientSession() as session, probing(collector.url):

            async def silent(_: int) -> None:
                async with session.ws_connect(url, heartbeat=None) as ws:
                    msg = await ws.receive(timeout=HELLO_TIMEOUT_S + 5)
                    while msg.type is aiohttp.WSMsgType.BINARY:  # the Error frame comes first
                        msg = await ws.receive(timeout=5)
                    codes.append(ws.close_code)

            started = time.monotonic()
            await asyncio.gather(*(silent(i) for i in range(30)))
            took_s = time.monotonic() - started
            counted = await protocol_errors(session, collector.url, "ingest", "hello_timeout")
        assert codes == [1008] * 30
        assert counted == 30
        assert took_s >= HELLO_TIMEOUT_S
        await collector_ok(collector)

    async def test_oversized_headers(self, procs: ProcessGroup) -> None:
        """A 64 KiB header line and 500 headers are refused with a 4xx (or a closed socket), never a crash."""
        collector = await flood_collector(procs)
        async with probing(collector.url):
            for headers in ({"X-Big": "a" * 65_536}, {f"X-H{i}": "v" for i in range(500)}):
                try:
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(f"{collector.url}/api/v1/health", headers=headers) as response,
                    ):
                        assert 400 <= response.status < 500
                except aiohttp.ClientError:
                    pass  # the server may just close the connection
        await collector_ok(collector)

    async def test_agent_reconnecting_in_a_tight_loop(self, procs: ProcessGroup) -> None:
        """300 hellos from one agent instance, each connection dropped at once: one node, no leaked connections."""
        collector = await flood_collector(procs)
        url = collector.url.replace("http://", "ws://") + "/api/v1/ingest"
        frame = encode(hello("looper", "loop-inst", interval_s=1.0))
        rss_before = rss_bytes(collector.proc.pid)
        async with aiohttp.ClientSession() as session, probing(collector.url):

            async def reconnect(_: int) -> None:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.ws_connect(url, heartbeat=None) as ws:
                        await ws.send_bytes(frame)
                        ws._response.connection.transport.abort()  # type: ignore[union-attr]  # drop, no close

            await repeat(300, reconnect)

            async def settled() -> bool:
                return bool((await health(session, collector.url))["agents_connected"] == 0)

            await wait_until(settled, 10, "every dropped connection to be let go")
            body = await health(session, collector.url)
            _, nodes = await get_json(session, f"{collector.url}/api/v1/nodes")
        assert body["nodes"]["total"] == 1
        assert [n["status"]["node_id"] for n in nodes["nodes"]] == ["looper"]
        assert rss_bytes(collector.proc.pid) - rss_before < 32 * 2**20
        await collector_ok(collector)
