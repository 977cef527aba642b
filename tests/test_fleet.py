"""A small simulated fleet against a real collector on loopback: nothing lost, nothing reordered.

This keeps the simulator (``nodewatch simulate``, ``bench/fleet.py``) honest in CI (the big runs stay in ``bench/``):
50 simulated agents speak the real protocol over real websockets to a real
collector for a few seconds while a real subscriber watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from typing import Any

import aiohttp
import pytest

from collector.app import create_app
from collector.config import CollectorConfig
from nodewatch.simnodes import FleetConfig, FleetCounters, make_profiles
from nodewatch.simulate import run_worker
from shared.codec import COLLECTOR_LIMITS, decode
from shared.messages import Snapshot, Update

NODES = 50
INTERVAL_S = 0.5
DURATION_S = 10.0


async def _watch(url: str, seen: dict[str, list[int]], ready: asyncio.Event) -> None:
    """Record, per node, every last_sample seq the subscriber is sent, in arrival order."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                break
            message = decode(msg.data, COLLECTOR_LIMITS)
            if isinstance(message, Snapshot):
                ready.set()
            if isinstance(message, Snapshot | Update):
                for entry in message.nodes:
                    if entry.last_sample is not None:
                        seen.setdefault(entry.status.node_id, []).append(entry.last_sample.seq)


@pytest.mark.slow
class TestFleet:
    async def test_small_fleet_loses_and_reorders_nothing(self, aiohttp_server: Any) -> None:
        """Every heartbeat of 50 agents lands in history in order, with no gap, and subscribers see seqs rise."""
        server = await aiohttp_server(create_app(CollectorConfig(flush_interval_s=0.05, max_nodes=NODES)))
        base = f"http://127.0.0.1:{server.port}"
        config = FleetConfig(
            collector=base,
            nodes=NODES,
            interval_s=INTERVAL_S,
            duration_s=DURATION_S,
            processes=1,
            prefix="t",
            spread_addresses=False,
            token=None,
            dying=False,
        )
        seen: dict[str, list[int]] = {}
        ready = asyncio.Event()
        watcher = asyncio.create_task(_watch(f"{base}/api/v1/subscribe", seen, ready))
        try:
            async with asyncio.timeout(5):
                await ready.wait()
            counters = await run_worker(config, make_profiles(config, random.Random(7)), 0, FleetCounters())
            await asyncio.sleep(0.3)  # two flush intervals: the last updates reach the subscriber
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

        assert counters.connect_errors == 0
        assert counters.connected == NODES
        assert len(counters.last_seq) == NODES
        assert min(counters.last_seq.values()) >= DURATION_S / INTERVAL_S - 3
        async with aiohttp.ClientSession() as session:
            for node_id, last in sorted(counters.last_seq.items()):
                async with session.get(f"{base}/api/v1/nodes/{node_id}") as resp:
                    assert resp.status == 200
                    body = await resp.json()
                assert body["history"]["seq"] == list(range(1, last + 1)), node_id
                assert body["status"]["last_seq"] == last
                assert body["status"]["missing_samples"] == 0
                seqs = seen.get(node_id, [])
                assert seqs, f"the subscriber never saw a sample of {node_id}"
                assert all(a < b for a, b in itertools.pairwise(seqs)), (node_id, seqs)
                assert seqs[-1] == last, (node_id, seqs[-1], last)
            async with session.get(f"{base}/api/v1/health") as resp:
                health = await resp.json()
        assert health["heartbeats_received"] == counters.sent
