"""The trust rows of the README's Reliability table, small, against real ``nodewatch`` processes on loopback.

The bench version (``bench/faults.py``, the trust scenarios) opens 10,000 idle sockets; this one
400. Each test fails on the code before issue 13's trust work (idle sockets gave agents a 503;
a replayed instance id took the node over).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Error
from tests.support.messages import hello
from tests.support.processes import ProcessGroup, agent_connections, node, wait_until

IDLE = 400


async def has_sample(session: aiohttp.ClientSession, base: str, node_id: str) -> bool:
    """True once ``node_id`` has a sample in the collector's API."""
    body = await node(session, base, node_id)
    return body is not None and int(body["status"]["last_seq"]) >= 1


def state_dir(procs: ProcessGroup, node_id: str) -> str:
    """A private state dir for one agent's node key."""
    return str(procs.workdir / f"state-{node_id}")


async def test_idle_sockets_from_one_address_leave_room_for_a_real_agent(procs: ProcessGroup) -> None:
    """400 idle sockets from 127.0.0.2 against ``--max-nodes 100``: a real agent from 127.0.0.1 still pushes."""
    collector = await asyncio.to_thread(procs.collector, "--max-nodes", "100")
    sockets: list[asyncio.StreamWriter] = []
    for _ in range(IDLE):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", collector.port, local_addr=("127.0.0.2", 0))
            sockets.append(writer)
    procs.agent(collector.url, "besieged", "--state-dir", state_dir(procs, "besieged"))
    async with aiohttp.ClientSession() as session:
        await wait_until(lambda: has_sample(session, collector.url, "besieged"), 60, "the agent's first sample")
    for writer in sockets:
        writer.close()
    assert collector.proc.alive()


async def test_a_replayed_instance_id_cannot_take_a_keyed_node(procs: ProcessGroup) -> None:
    """An insider replaying a real agent's instance id, without its key, gets 4403; the agent keeps pushing."""
    collector = await asyncio.to_thread(procs.collector)
    agent = procs.agent(collector.url, "victim", "--interval", "0.2", "--state-dir", state_dir(procs, "victim"))
    async with aiohttp.ClientSession() as session:
        await wait_until(lambda: has_sample(session, collector.url, "victim"), 60, "the agent's first sample")
        body = await node(session, collector.url, "victim")
        assert body is not None
        codes = []
        for credential in (None, os.urandom(32).hex()):
            fake = hello(
                "victim", body["status"]["agent_instance_id"], newest_seq=2**63 - 1, node_credential=credential
            )
            async with session.ws_connect(collector.url + "/api/v1/ingest", heartbeat=None) as ws:
                await ws.send_bytes(encode(fake))
                msg = await ws.receive(timeout=10)
                assert isinstance(decode(msg.data, COLLECTOR_LIMITS), Error)
                close = await ws.receive(timeout=10)
                codes.append((close.data, close.extra))
        seq = int(body["status"]["last_seq"])

        async def advanced() -> bool:
            later = await node(session, collector.url, "victim")
            return later is not None and int(later["status"]["last_seq"]) > seq + 3

        await wait_until(advanced, 30, "the real agent to go on pushing")
    assert codes == [(4403, "node_key_required"), (4403, "node_key_mismatch")]
    assert agent_connections(agent.log_text()) == 1
