"""Node keys end to end: real ``nodewatch agent`` processes against a real ``nodewatch collector`` process.

The agent keeps its node key in ``--state-dir`` and proves it in every hello; the collector binds
the node id to it on first use. Before the trust wiring a second machine claiming the same node id
was merely told 4409 while the first was online, and won the id the moment the first restarted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import ProcessGroup, node, wait_until

NODE = "web-01"


async def status(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """The node's status, or {} while the collector does not know it."""
    body = await node(session, base, NODE)
    return {} if body is None else dict(body["status"])


async def test_a_second_machine_cannot_take_a_node_id_and_the_owner_restarts_at_once(
    group: ProcessGroup, tmp_path: Path
) -> None:
    """Another state dir under the same node id is refused 4403; the owner's restart takes its node back at once."""
    collector = group.collector()
    owner_dir, other_dir = tmp_path / "owner-state", tmp_path / "other-state"
    owner = group.agent(collector.url, NODE, "--interval", "0.2", "--state-dir", str(owner_dir))
    async with aiohttp.ClientSession() as session:

        async def streaming() -> bool:
            return int((await status(session, collector.url)).get("last_seq", 0)) >= 2

        await wait_until(streaming, 20, "the owner's heartbeats")
        first = (await status(session, collector.url))["agent_instance_id"]
        assert (owner_dir / "node.key").stat().st_mode & 0o777 == 0o600
        other = group.agent(collector.url, NODE, "--interval", "0.2", "--state-dir", str(other_dir))

        async def refused() -> bool:
            return "node_key_mismatch" in other.log_text()

        await wait_until(refused, 20, "the other machine's 4403")
        assert (await status(session, collector.url))["agent_instance_id"] == first
        owner.kill()
        group.agent(collector.url, NODE, "--interval", "0.2", "--state-dir", str(owner_dir))

        async def back() -> bool:
            now = await status(session, collector.url)
            return now.get("agent_instance_id") not in {None, first} and now.get("connected") is True

        await wait_until(back, 20, "the restarted owner")
        assert "duplicate_node" not in collector.proc.log_text()  # the owner's own restart is never a 4409
