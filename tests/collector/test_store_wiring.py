"""The durable store in a running collector (issue 12): acks after commits, a fleet that survives a restart,
the history API, and a full disk that degrades health without stopping liveness.

A real collector on loopback (``create_app`` with a ``data_dir``) and real websockets; the store is
the real SQLite one in ``tmp_path``. The disk fills for real: ``SqliteEngine.max_bytes`` is a quota
below the file's size, so commits fail with SQLITE_FULL. Not here: kill -9 of a subprocess
(tests/faults/test_collector_killed.py) and the store's own rules (tests/collector/store/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from collector.app import RUNTIME_KEY, create_app
from shared.codec import encode
from tests.support.collector import connect_agent, fast_config, send_heartbeat
from tests.support.messages import heartbeat, hello

WAIT_S = 10.0  # generous on 2 busy cores: commits are about 1 s apart


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def health(client: TestClient[Any, Any]) -> dict[str, Any]:
    """The collector's /api/v1/health body, whatever its status code."""
    resp = await client.get("/api/v1/health")
    body: dict[str, Any] = await resp.json()
    return body


async def committed(client: TestClient[Any, Any], samples: int) -> None:
    """Wait until the store has committed at least ``samples`` samples."""

    async def done() -> bool:
        return int((await health(client))["store"]["committed_samples"]) >= samples

    await eventually(done, f"{samples} samples committed")


def now_heartbeat(seq: int, of: int) -> Any:
    """Heartbeat ``seq`` of ``of``, sampled one second apart and ending now (the store keeps 24 h of raw)."""
    return heartbeat(seq, sampled_at=time.time() - (of - seq))


class TestAcksWaitForCommits:
    async def test_a_heartbeat_is_acked_only_once_its_commit_is_done(self, aiohttp_client: Any, tmp_path: Path) -> None:
        """The ack that answers a heartbeat covers only samples already committed: the agent keeps the rest."""
        client = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        ws, ack = await connect_agent(client, hello())
        assert ack.seq == 0
        assert (await send_heartbeat(ws, now_heartbeat(1, 3))).seq == 0  # not committed when it was answered
        await committed(client, 1)
        assert (await send_heartbeat(ws, now_heartbeat(2, 3))).seq == 1
        await committed(client, 2)
        assert (await send_heartbeat(ws, now_heartbeat(3, 3))).seq == 2
        await ws.close()

    async def test_without_a_data_dir_acks_are_immediate_and_health_says_store_off(self, aiohttp_client: Any) -> None:
        """create_app's default keeps everything in memory: acks at once, health shows the store off."""
        client = await aiohttp_client(create_app(fast_config()))
        ws, _ = await connect_agent(client, hello())
        assert (await send_heartbeat(ws, heartbeat(1))).seq == 1
        assert (await health(client))["store"]["status"] == "off"
        await ws.close()


class TestRestart:
    async def test_a_restarted_collector_knows_every_node_with_its_last_sample_and_history(
        self, aiohttp_client: Any, tmp_path: Path
    ) -> None:
        """After a restart on the same data dir, the node is back, disconnected, with its samples and last seq."""
        first = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        ws, _ = await connect_agent(first, hello(ack_every=2))
        for seq in range(1, 5):
            await ws.send_bytes(encode(now_heartbeat(seq, 4)))
        await committed(first, 4)
        await first.close()
        second = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        body = await (await second.get("/api/v1/nodes/node-a")).json()
        assert body["status"]["connected"] is False  # known at once; its ring fills right after the start

        async def loaded() -> bool:
            return bool((await health(second))["store"]["recent_loaded"])

        await eventually(loaded, "the recent window loaded")
        body = await (await second.get("/api/v1/nodes/node-a")).json()
        assert body["status"]["last_seq"] == 4
        assert body["history"]["seq"] == [1, 2, 3, 4]
        assert body["last_sample"]["seq"] == 4
        assert body["facts"]["hostname"] == "host-a"
        ws2, ack = await connect_agent(second, hello(ack_every=2))
        assert ack.seq == 4, "the hello of the same agent instance is acked with what the store holds"
        await ws2.close()

    async def test_a_restored_node_whose_agent_is_gone_goes_offline_by_the_normal_rules(
        self, aiohttp_client: Any, tmp_path: Path
    ) -> None:
        """A node online before the restart and silent after it is offline within 10 intervals of the start."""
        first = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        ws, _ = await connect_agent(first, hello(interval_s=0.1))
        await send_heartbeat(ws, now_heartbeat(1, 1))
        await committed(first, 1)
        await first.close()
        second = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))

        async def offline() -> bool:
            body = await (await second.get("/api/v1/nodes/node-a")).json()
            return bool(body["status"]["state"] == "offline")

        await eventually(offline, "the silent node offline")
        body = await (await second.get("/api/v1/nodes/node-a")).json()
        assert body["last_sample"]["seq"] == 1
        assert body["status"]["last_seen_at"] is not None


class TestHistoryApi:
    async def test_history_answers_raw_points_with_gaps_explicit(self, aiohttp_client: Any, tmp_path: Path) -> None:
        """GET .../history gives the raw tier for a short range; a missing sample shows as a gap, not a value."""
        client = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        ws, _ = await connect_agent(client, hello(ack_every=10))
        end = time.time()
        for seq in (1, 2, 3, 6, 7):  # 4 and 5 never sampled
            await ws.send_bytes(encode(heartbeat(seq, sampled_at=end - 7 + seq)))
        await committed(client, 5)
        resp = await client.get("/api/v1/nodes/node-a/history", params={"from": str(end - 7), "to": str(end + 1)})
        assert resp.status == 200
        body = await resp.json()
        assert body["tier"] == "raw"
        assert body["seq"] == [1, 2, 3, 6, 7]
        assert any(lo <= end - 7 + 3.5 <= hi for lo, hi in body["gaps"]), body["gaps"]
        await ws.close()

    async def test_history_refuses_a_bad_range_naming_the_parameter(self, aiohttp_client: Any, tmp_path: Path) -> None:
        """A range whose end is before its start is a 400 that names from/to."""
        client = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
        resp = await client.get("/api/v1/nodes/node-a/history", params={"from": "200", "to": "100"})
        assert resp.status == 400
        assert "from" in (await resp.json())["detail"]

    async def test_history_without_a_store_comes_from_the_memory_window(self, aiohttp_client: Any) -> None:
        """An --ephemeral collector answers the same API from its 15-minute window."""
        client = await aiohttp_client(create_app(fast_config()))
        ws, _ = await connect_agent(client, hello())
        end = time.time()
        for seq in (1, 2, 3):
            await send_heartbeat(ws, heartbeat(seq, sampled_at=end - 3 + seq))
        body = await (await client.get("/api/v1/nodes/node-a/history", params={"from": str(end - 10)})).json()
        assert body["tier"] == "raw"
        assert body["seq"] == [1, 2, 3]
        await ws.close()


class TestDiskFull:
    async def test_a_full_disk_degrades_health_stops_acks_and_recovers_by_itself(
        self, aiohttp_client: Any, tmp_path: Path
    ) -> None:
        """Disk full: health 503 degraded with the reason, acks stop, liveness goes on; space back: acks resume."""
        app = create_app(fast_config(data_dir=tmp_path))
        client = await aiohttp_client(app)
        store = app[RUNTIME_KEY].store
        assert store is not None
        agent = Pump(*(await connect_agent(client, hello(interval_s=PUMP_S)))[:1])

        async def one_committed() -> bool:
            await agent.run_for(PUMP_S)
            return int((await health(client))["store"]["committed_samples"]) >= 1

        await eventually(one_committed, "a first commit")
        # A quota at the file's size: the next commit that needs a new page fails with SQLITE_FULL. New nodes'
        # registry rows need pages soon, so more agents say hello until it happens.
        store.engine.max_bytes = 1
        others: list[Any] = []

        async def degraded() -> bool:
            others.append((await connect_agent(client, hello(f"other-{len(others)}", hostname="x" * 200)))[0])
            await agent.run_for(PUMP_S)
            return bool((await client.get("/api/v1/health")).status == 503)

        await eventually(degraded, "health degraded")
        body = await health(client)
        assert body["status"] == "degraded"
        assert "disk full" in body["store"]["reason"]
        assert "disk full" in body["reason"]
        stuck = await agent.run_for(1.5)  # more than a commit interval
        assert len(set(stuck)) == 1, f"acks moved while the disk was full: {stuck}"
        assert stuck[0] < agent.seq - 5
        node = await (await client.get("/api/v1/nodes/node-a")).json()
        assert node["status"]["state"] == "online"
        assert node["status"]["last_seq"] == agent.seq  # liveness and the latest sample go on
        store.engine.max_bytes = None  # space returns

        async def recovered() -> bool:
            await agent.run_for(PUMP_S)
            return bool((await client.get("/api/v1/health")).status == 200)

        await eventually(recovered, "health ok again")
        sent = agent.seq
        after = await agent.run_for(2.5)
        assert max(after) >= sent, f"acks did not catch up after recovery: {after[-3:]} < {sent}"
        await agent.ws.close()
        for ws in others:
            await ws.close()


PUMP_S = 0.1  # the pumped agent's interval: offline after 1 s of silence


class Pump:
    """An agent that sends a heartbeat every PUMP_S, as a real one does, and reads each ack."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seq = 0

    async def run_for(self, seconds: float) -> list[int]:
        """Send heartbeats for ``seconds``; the ack seq that answered each."""
        acks = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.seq += 1
            acks.append((await send_heartbeat(self.ws, heartbeat(self.seq, sampled_at=time.time()))).seq)
            await asyncio.sleep(PUMP_S)
        return acks
