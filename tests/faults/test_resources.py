"""Resources: a collector under a 256 MiB address-space limit, hit by more simulated nodes than its --max-nodes.

Why RLIMIT_AS and what it means: the collector is one thread (asyncio, no
executor in the ingest path) and maps about 60 MB at start, so a 256 MiB
address-space limit (``prlimit --as`` / ``ulimit -v``, set here with
``resource.setrlimit`` before exec) leaves it about 190 MiB to allocate; any
allocation beyond that raises MemoryError inside the process, which would show
in its log or kill it. The cap (``--max-nodes``) is what keeps it inside the
limit: new nodes past it are refused with close 4503 ``capacity_reached``.
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Error
from tests.support.messages import hello
from tests.support.processes import ProcessGroup, health, protocol_errors, rss_bytes, wait_until

LIMIT_BYTES = 256 * 2**20
MAX_NODES = 200
FLEET_NODES = 300


def limit_address_space() -> None:
    """preexec_fn: cap the child's address space at 256 MiB (what ``prlimit --as`` does)."""
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


class TestMemoryLimit:
    """More nodes than the cap, inside a memory limit."""

    async def test_cap_refuses_with_4503_and_memory_holds(self, procs: ProcessGroup) -> None:
        """300 simulated nodes against --max-nodes 200: exactly 200 held, the rest refused with 4503, no MemoryError."""
        collector = await asyncio.to_thread(
            procs.collector, "--max-nodes", str(MAX_NODES), preexec_fn=limit_address_space
        )
        fleet = procs.fleet(collector.url, FLEET_NODES, 0.5, 60, "--processes", "1")
        url = collector.url.replace("http://", "ws://") + "/api/v1/ingest"
        async with aiohttp.ClientSession() as session:

            async def full() -> bool:
                refused = await protocol_errors(session, collector.url, "ingest", "capacity_reached")
                return (await health(session, collector.url))["nodes"]["total"] == MAX_NODES and refused >= 50

            await wait_until(full, 40, "the collector to fill up and refuse the rest")
            async with session.ws_connect(url, heartbeat=None) as ws:
                await ws.send_bytes(encode(hello("one-too-many", "late-inst")))
                error = decode((await ws.receive(timeout=5)).data, COLLECTOR_LIMITS)
                await ws.receive(timeout=5)
                assert isinstance(error, Error)
                assert error.reason == "capacity_reached"
                assert ws.close_code == 4503
            await asyncio.sleep(2.0)  # a few rounds of refused reconnects
            body = await health(session, collector.url)
        fleet.kill()
        limits = (Path("/proc") / str(collector.proc.pid) / "limits").read_text()
        assert f"Max address space         {LIMIT_BYTES}" in limits, "the limit did not apply"
        assert body["nodes"]["total"] == MAX_NODES
        assert body["agents_connected"] <= MAX_NODES
        assert collector.proc.alive()
        assert "MemoryError" not in collector.proc.log_text()
        assert rss_bytes(collector.proc.pid) < LIMIT_BYTES
