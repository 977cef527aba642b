"""Who gets a restored node id back after a kill -9 and restart: real collector, agent and simulator processes.

After a restart every known node is back and judged by the normal liveness rules from the
collector's start (issue 12), so a node that was online counts as online for 3 intervals though
no connection holds it. An agent restarted meanwhile has a new instance id. With its node key it
proves the node id and takes the node at once (docs/security.md 3.1: no 4409 after a restart);
without one, the instance-id rules of docs/protocol.md 4.1 apply, as they would to a squatter:
4409 while the restored node is online, the node once it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from collector.store.keystore import KEYS_NAME
from tests.support.processes import ProcessGroup, health, node, wait_until

NODE = "web-01"
# Long enough that the restored node is still online (3 intervals) when the restarted agent says hello.
INTERVAL_S = "5"


async def _online_with_samples(session: aiohttp.ClientSession, url: str, node_id: str) -> bool:
    body = await node(session, url, node_id)
    return body is not None and body["status"]["state"] == "online" and body["status"]["last_seq"] >= 1


class TestRestartedAgent:
    """An agent restarted while its collector was down, with a new instance id."""

    async def test_a_keyed_agent_takes_its_restored_node_at_once(self, procs: ProcessGroup, tmp_path: Path) -> None:
        """The same node key under a new instance id gets the node back while it still counts online: no 4409."""
        collector = procs.collector()
        state = ["--interval", INTERVAL_S, "--state-dir", str(tmp_path / "state")]
        agent = procs.agent(collector.url, NODE, *state)
        keys = procs.data_dir / KEYS_NAME
        async with aiohttp.ClientSession() as session:

            async def registered() -> bool:
                return await _online_with_samples(session, collector.url, NODE) and keys.exists()

            await wait_until(registered, 30, "the node online and its key saved")
            assert [r["node_id"] for r in json.loads(keys.read_bytes())["keys"]] == [NODE]
            old_instance = (await node(session, collector.url, NODE) or {})["status"]["agent_instance_id"]
            agent.kill()
            collector.proc.kill()
            restarted = procs.collector()
            procs.agent(restarted.url, NODE, *state)

            async def taken_back() -> bool:
                body = await node(session, restarted.url, NODE)
                return body is not None and body["status"]["agent_instance_id"] != old_instance

            await wait_until(taken_back, 30, "the restarted agent's hello accepted")
            assert (await health(session, restarted.url))["agents_connected"] == 1
        assert "duplicate_node" not in restarted.proc.log_text()

    async def test_an_unkeyed_agent_waits_until_the_restored_node_is_stale(self, procs: ProcessGroup) -> None:
        """Without a key a new instance is a possible squatter: 4409 while the node counts online, then it gets in."""
        collector = procs.collector()
        args = ("--prefix", "sim", "--no-dying")
        fleet = procs.fleet(collector.url, 1, float(INTERVAL_S), 120, *args)
        node_id = "sim-00000"
        async with aiohttp.ClientSession() as session:
            await wait_until(lambda: _online_with_samples(session, collector.url, node_id), 30, "the node online")
            fleet.kill()
            collector.proc.kill()
            restarted = procs.collector()
            restored = await node(session, restarted.url, node_id)
            assert restored is not None
            assert restored["status"]["state"] == "online"  # no connection holds it, but it counts online
            procs.fleet(restarted.url, 1, float(INTERVAL_S), 120, *args)

            async def refused() -> bool:
                return "duplicate_node" in restarted.proc.log_text()

            await wait_until(refused, 30, "the new instance's 4409 while the restored node is online")

            async def taken_over() -> bool:
                return bool((await health(session, restarted.url))["agents_connected"] == 1)

            await wait_until(taken_over, 60, "the new instance's hello accepted once the node is stale")
