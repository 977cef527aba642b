"""/metrics of a real collector process with 3 real agents: promtool-clean, every family the agents feed is there."""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ProcessGroup, wait_until

NODES = ("metrics-a", "metrics-b", "metrics-c")
# Families every Linux agent feeds (per-core, modes, mounts, interfaces, TCP, fds, memory, info).
# Temperatures, cgroup limits, PSI and per-disk I/O depend on the machine, so they are not required here;
# tests/collector/test_metrics_families.py checks each of them from a recorded heartbeat.
EXPECTED = (
    "nodewatch_node_info",
    "nodewatch_node_cpu_core_usage_ratio",
    "nodewatch_node_cpu_mode_ratio",
    "nodewatch_node_filesystem_size_bytes",
    "nodewatch_node_filesystem_avail_bytes",
    "nodewatch_node_filesystem_free_bytes",
    "nodewatch_node_filesystem_readonly",
    "nodewatch_node_network_interface_receive_bytes_per_second",
    "nodewatch_node_network_receive_errs",
    "nodewatch_node_netstat_tcp_currestab",
    "nodewatch_node_filefd_allocated",
    "nodewatch_node_memory_total_bytes",
    "nodewatch_node_memory_swap_total_bytes",
    "nodewatch_node_load1",
)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
async def test_three_real_agents_give_a_clean_and_full_exposition(procs: ProcessGroup, tmp_path: Path) -> None:
    """Three `nodewatch agent` processes: promtool passes the scrape, and each node has every common family."""
    collector = procs.collector()
    for node_id in NODES:
        procs.agent(collector.url, node_id, "--interval", "0.5", "--state-dir", str(tmp_path / node_id))
    text = ""
    async with aiohttp.ClientSession() as session:

        async def slow_tier_of_all() -> bool:
            nonlocal text
            async with session.get(f"{collector.url}/metrics") as resp:
                text = await resp.text()
            return all(f'nodewatch_node_netstat_tcp_currestab{{node="{n}"}}' in text for n in NODES)

        await wait_until(slow_tier_of_all, 30.0, "a slow-tier reading from every agent")
    promtool = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await asyncio.wait_for(promtool.communicate(text.encode()), timeout=30)
    assert promtool.returncode == 0, output.decode()
    nodes_by_family: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        nodes_by_family[family.name] = {s.labels["node"] for s in family.samples if "node" in s.labels}
    for name in EXPECTED:
        assert nodes_by_family.get(name) == set(NODES), f"{name}: {nodes_by_family.get(name)}"
