"""/metrics writes at most 64 per-core and 32 per-mount (interface, sensor) series per node, and counts the rest.

Against a real collector on loopback. Fails on the code before, where a maximal heartbeat's 1,024
cores and 64 mounts were all written: ~318 KiB of text per node, 3.7 s of scrape for 200 nodes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from asyncio.subprocess import PIPE, STDOUT

import pytest

from collector.metric_table import MAX_CORES_PER_NODE, MAX_KEYS_PER_NODE
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

GIB = 1024**3


def _series(text: str, family: str) -> int:
    return len(re.findall(rf"^{family}\{{", text, re.MULTILINE))


class TestSeriesCap:
    """A node with more cores and mounts than the caps: the caps' worth of series, and the rest counted."""

    async def test_a_large_node_is_capped_and_says_how_many_series_were_left_out(self, make_client: MakeClient) -> None:
        """1,024 cores and 64 mounts: 64 core series, 32 per mount family, and a truncated count of the rest."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(node_id="big"))
        disks = {f"/mnt/{index:02d}": [100 * GIB, 42 * GIB] for index in range(64)}
        await send_heartbeat(ws, heartbeat(1, cpu_per_core_percent=[5.0] * 1024, disks=disks))
        text = await (await client.get("/metrics")).text()
        assert _series(text, "nodewatch_node_cpu_core_usage_ratio") == MAX_CORES_PER_NODE
        assert _series(text, "nodewatch_node_filesystem_size_bytes") == MAX_KEYS_PER_NODE
        assert '/mnt/31"' in text
        assert '/mnt/32"' not in text
        # Left out: 960 cores, and 32 mounts in each of the mount families this heartbeat fills.
        match = re.search(r'^nodewatch_node_series_truncated\{node="big"\} (\S+)$', text, re.MULTILINE)
        assert match is not None
        mount_families = sum(
            1
            for family in re.findall(r"^# TYPE (nodewatch_node_filesystem_\w+) ", text, re.MULTILINE)
            if _series(text, family) == MAX_KEYS_PER_NODE
        )
        assert float(match.group(1)) == (1024 - MAX_CORES_PER_NODE) + mount_families * (64 - MAX_KEYS_PER_NODE)
        await ws.close()

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    async def test_a_capped_exposition_passes_promtool(self, make_client: MakeClient) -> None:
        """A scrape with a capped node and its truncated count is still a clean exposition for promtool."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(node_id="big"))
        sensors = {f"sensor-{index:02d}": 40.0 for index in range(64)}
        await send_heartbeat(ws, heartbeat(1, cpu_per_core_percent=[5.0] * 128, temperatures=sensors))
        text = await (await client.get("/metrics")).text()
        assert "nodewatch_node_series_truncated{" in text
        promtool = await asyncio.create_subprocess_exec(
            "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await asyncio.wait_for(promtool.communicate(text.encode()), timeout=30)
        assert promtool.returncode == 0, output.decode()
        await ws.close()

    async def test_a_small_node_has_every_series_and_no_truncated_line(self, make_client: MakeClient) -> None:
        """A node within the caps shows every core and mount, and no truncated series."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(node_id="small"))
        await send_heartbeat(ws, heartbeat(1, cpu_per_core_percent=[5.0] * 8))
        text = await (await client.get("/metrics")).text()
        assert _series(text, "nodewatch_node_cpu_core_usage_ratio") == 8
        assert _series(text, "nodewatch_node_filesystem_size_bytes") == 2
        assert _series(text, "nodewatch_node_series_truncated") == 0
        await ws.close()
