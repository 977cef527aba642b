"""Node keys survive a collector restart: real ``nodewatch collector`` and ``agent`` processes on one data dir.

Before the keys were saved, a restarted collector had an empty key table, so any key claiming a
known node id was trusted on first use again: the squatting of issue 13 (finding 2) came back
with every restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from collector.store.keystore import KEYS_NAME
from tests.support.processes import ProcessGroup, node, wait_until

NODE = "web-01"


class TestRestart:
    """What a restart on the same data dir keeps of the node keys."""

    async def test_another_key_is_refused_after_a_kill_and_restart(self, group: ProcessGroup, tmp_path: Path) -> None:
        """A node registered with key K1 stays bound to it across a kill -9: an agent with K2 gets 4403."""
        collector = group.collector()
        owner = group.agent(collector.url, NODE, "--interval", "0.2", "--state-dir", str(tmp_path / "k1"))
        keys = group.data_dir / KEYS_NAME
        async with aiohttp.ClientSession() as session:

            async def registered() -> bool:
                body = await node(session, collector.url, NODE)
                return body is not None and keys.exists()

            await wait_until(registered, 20, "node A registered and its key saved")
        assert [r["node_id"] for r in json.loads(keys.read_bytes())["keys"]] == [NODE]
        owner.kill()
        collector.proc.kill()  # kill -9: only what the debounced save wrote survives
        restarted = group.collector()
        other = group.agent(restarted.url, NODE, "--interval", "0.2", "--state-dir", str(tmp_path / "k2"))

        async def refused() -> bool:
            return "node_key_mismatch" in other.log_text()

        await wait_until(refused, 20, "the second key's 4403")
        assert "first use of key" not in restarted.proc.log_text()

    def test_a_damaged_key_file_refuses_to_start_naming_it(self, group: ProcessGroup) -> None:
        """A garbled node_keys.json stops the collector with exit 2 and the file's name, and is left as it was."""
        group.data_dir.mkdir(parents=True)
        keys = group.data_dir / KEYS_NAME
        keys.write_bytes(b'{"format": "nodewatch-node-keys", "version": 1, "keys": [{"node_id": 3}]}')
        status, output = group.collector_refusal()
        assert status == 2
        assert str(keys) in output
        assert "node keys are damaged" in output
        assert keys.read_bytes().startswith(b'{"format"')
