"""/metrics is as rich as the wire: node_exporter-named families per mount, device, core and mode, promtool-clean."""

from __future__ import annotations

import asyncio
import re
import shutil
from asyncio.subprocess import PIPE, STDOUT
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.app import RUNTIME_KEY
from shared.messages import Heartbeat
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import GIB, WALL_T0, heartbeat, hello

# One heartbeat that carries every field, slow tier included (docs/protocol.md 5.2).
FULL: dict[str, Any] = {
    "cpu_per_core_percent": [12.5, 87.5],
    "mem_used_bytes": 3 * GIB,
    "mem_available_bytes": 5 * GIB,
    "swap_total_bytes": 2 * GIB,
    "swap_used_bytes": GIB,
    "disks": {"/": [100 * GIB, 75 * GIB, 20 * GIB], "/boot": [GIB, GIB // 2]},
    "disk_inodes": {"/": [6_000_000, 5_000_000]},
    "disks_read_only": ["/boot"],
    "cpu_mode_percent": {"user": 30.0, "system": 10.0, "iowait": 5.0, "steal": 1.0},
    "pressure_avg10_percent": {"cpu": [2.5], "io": [10.0, 4.0]},
    "disk_devices": {"sda": [1000.0, 2000.0, 10.0, 20.0, 50.0, 4.0]},
    "net_interfaces": {"eth0": [100.0, 200.0], "docker0": [1.0, 2.0]},
    "net_interface_errors": {"eth0": [1, 2, 3, 4]},
    "net_interfaces_down": ["docker0"],
    "tcp_established": 42,
    "tcp_time_wait": 7,
    "fd_allocated": 1234,
    "fd_max": 100_000,
    "temperatures": {"Package id 0": 55.0},
    "cgroup_cpu_limit_cores": 0.5,
    "cgroup_memory_limit_bytes": GIB,
    "process_count": 150,
}


def value(text: str, name: str, **labels: str) -> float:
    """The value of the series ``name{labels}`` (node web-1) in an exposition; fails the test if absent."""
    wanted = {"node": "web-1", **labels}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    raise AssertionError(f"expected a series {name}{wanted}")


def absent(text: str, name: str, **labels: str) -> bool:
    """Whether the exposition has no series ``name{labels}`` of node web-1."""
    try:
        value(text, name, **labels)
    except AssertionError:
        return True
    return False


async def scrape(make_client: MakeClient, *samples: Heartbeat, interval_s: float = 1.0) -> str:
    """/metrics of a real collector after one real agent sent ``samples``."""
    client = await make_client()
    ws, _ = await connect_agent(client, hello("web-1", interval_s=interval_s, hostname="web-1.example"))
    for sample in samples:
        await send_heartbeat(ws, sample)
    resp = await client.get("/metrics")
    assert resp.status == 200
    text: str = await resp.text()
    await ws.close()
    return text


class TestFamilies:
    async def test_every_wire_field_has_its_family(self, make_client: MakeClient) -> None:
        """Per-core, per-mode, per-mount, per-interface, per-disk, PSI, temperatures, TCP, fds, cgroup and info show."""
        text = await scrape(make_client, heartbeat(1, **FULL))
        assert value(text, "nodewatch_node_cpu_core_usage_ratio", cpu="1") == 0.875
        assert value(text, "nodewatch_node_cpu_mode_ratio", mode="iowait") == 0.05
        assert value(text, "nodewatch_node_filesystem_size_bytes", mountpoint="/") == 100 * GIB
        assert value(text, "nodewatch_node_filesystem_avail_bytes", mountpoint="/") == 20 * GIB
        assert value(text, "nodewatch_node_filesystem_free_bytes", mountpoint="/") == 25 * GIB
        assert value(text, "nodewatch_node_filesystem_fullness_ratio", mountpoint="/") == 75 / 95
        assert value(text, "nodewatch_node_filesystem_fullness_ratio", mountpoint="/boot") == 0.5
        assert absent(text, "nodewatch_node_filesystem_avail_bytes", mountpoint="/boot")  # an old [total, used]
        assert value(text, "nodewatch_node_filesystem_files_free", mountpoint="/") == 5_000_000
        assert value(text, "nodewatch_node_filesystem_readonly", mountpoint="/boot") == 1
        assert value(text, "nodewatch_node_filesystem_readonly", mountpoint="/") == 0
        assert value(text, "nodewatch_node_network_interface_transmit_bytes_per_second", device="eth0") == 200
        assert value(text, "nodewatch_node_network_transmit_drop_total", device="eth0") == 4
        assert value(text, "nodewatch_node_network_up", device="docker0") == 0
        assert value(text, "nodewatch_node_network_up", device="eth0") == 1
        assert value(text, "nodewatch_node_disk_device_busy_ratio", device="sda") == 0.5
        assert value(text, "nodewatch_node_disk_device_await_seconds", device="sda") == 0.004
        assert value(text, "nodewatch_node_pressure_some_ratio", resource="cpu") == 0.025
        assert value(text, "nodewatch_node_pressure_full_ratio", resource="io") == 0.04
        assert absent(text, "nodewatch_node_pressure_full_ratio", resource="cpu")
        assert value(text, "nodewatch_node_hwmon_temp_celsius", sensor="Package id 0") == 55
        assert value(text, "nodewatch_node_netstat_tcp_currestab") == 42
        assert value(text, "nodewatch_node_sockstat_tcp_tw") == 7
        assert value(text, "nodewatch_node_filefd_maximum") == 100_000
        assert value(text, "nodewatch_node_memory_total_bytes") == 8 * GIB
        assert value(text, "nodewatch_node_memory_swap_total_bytes") == 2 * GIB
        assert value(text, "nodewatch_node_cgroup_cpu_limit_cores") == 0.5
        assert value(text, "nodewatch_node_boot_time_seconds") == WALL_T0 - 86_400
        info = re.search(r"^nodewatch_node_info\{(.*)\} 1\.0$", text, re.MULTILINE)
        assert info is not None
        assert 'hostname="web-1.example"' in info.group(1)
        assert 'os="Linux"' in info.group(1)
        assert text.count("nodewatch_node_info{") == 1

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    async def test_promtool_finds_nothing_to_lint(self, make_client: MakeClient) -> None:
        """promtool check metrics passes the full exposition, alerts and counters included."""
        text = await scrape(make_client, heartbeat(1, **FULL))
        promtool = await asyncio.create_subprocess_exec(
            "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await asyncio.wait_for(promtool.communicate(text.encode()), timeout=30)
        assert promtool.returncode == 0, output.decode()


class TestSlowTier:
    async def test_details_stay_between_slow_readings(self, make_client: MakeClient) -> None:
        """A heartbeat without the slow tier still shows the last inodes, modes and TCP counts."""
        plain = {k: v for k, v in FULL.items() if k in {"disks", "net_interfaces", "cpu_per_core_percent"}}
        text = await scrape(make_client, heartbeat(1, **FULL), heartbeat(2, **plain), heartbeat(3, **plain))
        assert value(text, "nodewatch_node_netstat_tcp_currestab") == 42
        assert value(text, "nodewatch_node_filesystem_files", mountpoint="/") == 6_000_000
        assert value(text, "nodewatch_node_cpu_mode_ratio", mode="user") == 0.3

    async def test_details_go_after_three_slow_periods(self, make_client: MakeClient) -> None:
        """Slow-tier values not renewed for three periods (15 s at 1 Hz) are gone, not shown stale forever."""
        plain = {"disks": FULL["disks"]}
        text = await scrape(make_client, heartbeat(1, **FULL), heartbeat(2, sampled_at=WALL_T0 + 17, **plain))
        assert absent(text, "nodewatch_node_netstat_tcp_currestab")
        assert value(text, "nodewatch_node_filesystem_size_bytes", mountpoint="/") == 100 * GIB  # a fast field stays

    async def test_forgotten_nodes_leave_the_details(self, make_client: MakeClient) -> None:
        """A node the cache forgot has no slow-tier details kept for it after the next scrape."""
        client = await make_client(forget_after_s=0.2)
        ws, _ = await connect_agent(client, hello("web-1"))
        await send_heartbeat(ws, heartbeat(1, **FULL))
        server: Any = client.server
        details = server.app[RUNTIME_KEY].details
        assert details.get("web-1") is not None
        await ws.close()  # offline at once, forgotten 0.2 s later
        for _ in range(100):  # up to 5 s
            if (await client.get("/api/v1/nodes/web-1")).status == 404:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/metrics")).status == 200
        assert details.get("web-1") is None


class TestPeerText:
    async def test_label_values_from_peers_are_escaped(self, make_client: MakeClient) -> None:
        """A hostname and a mount with quotes, backslashes and newlines come back intact, not as broken lines."""
        client = await make_client()
        odd = 'we"b\\1\nx'
        ws, _ = await connect_agent(client, hello("web-1", hostname=odd))
        await send_heartbeat(ws, heartbeat(1, disks={odd: [100, 10, 80]}))
        text = await (await client.get("/metrics")).text()
        await ws.close()
        info = next(f for f in text_string_to_metric_families(text) if f.name == "nodewatch_node_info")
        assert info.samples[0].labels["hostname"] == odd
        assert value(text, "nodewatch_node_filesystem_size_bytes", mountpoint=odd) == 100
