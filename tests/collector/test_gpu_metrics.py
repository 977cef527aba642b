"""/metrics shows each node's GPUs, one series per GPU labelled by index and name, promtool-clean."""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import PIPE, STDOUT

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.messages import GpuReading, Heartbeat
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import GIB, WALL_T0, heartbeat, hello

GPUS = [
    GpuReading(
        index=0,
        name="NVIDIA A100-SXM4-40GB",
        utilization_percent=87.0,
        memory_used_bytes=30 * GIB,
        memory_total_bytes=40 * GIB,
        temperature_celsius=64.0,
        power_watts=271.234,
    ),
    GpuReading(index=1, name='odd "board"\\x', memory_total_bytes=15 * GIB),  # no figures but its memory size
]
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(text: str) -> Series:
    """Every sample of an exposition, by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gpu(name: str, index: int, board: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """The key of node gpu-1's series ``name`` for GPU ``index``."""
    return name, frozenset({("node", "gpu-1"), ("gpu", str(index)), ("name", board)})


async def scrape(make_client: MakeClient, *samples: Heartbeat) -> str:
    """The exposition a real collector serves once node gpu-1's agent connection has sent ``samples``."""
    client = await make_client()
    agent, _ = await connect_agent(client, hello("gpu-1"))
    try:
        for sample in samples:
            await send_heartbeat(agent, sample)
        async with client.get("/metrics") as resp:
            assert resp.status == 200
            return await resp.text()
    finally:
        await agent.close()


class TestGpuFamilies:
    async def test_each_gpu_has_its_series(self, make_client: MakeClient) -> None:
        """Utilization as 0-1, memory in bytes, temperature and power show per GPU; values a GPU lacks do not."""
        found = series(await scrape(make_client, heartbeat(1, gpus=GPUS)))
        a100, odd = "NVIDIA A100-SXM4-40GB", 'odd "board"\\x'
        assert found[gpu("nodewatch_gpu_utilization_ratio", 0, a100)] == 0.87
        assert found[gpu("nodewatch_gpu_memory_used_bytes", 0, a100)] == 30 * GIB
        assert found[gpu("nodewatch_gpu_memory_total_bytes", 0, a100)] == 40 * GIB
        assert found[gpu("nodewatch_gpu_temperature_celsius", 0, a100)] == 64.0
        assert found[gpu("nodewatch_gpu_power_watts", 0, a100)] == 271.234
        assert found[gpu("nodewatch_gpu_memory_total_bytes", 1, odd)] == 15 * GIB  # peer text, escaped and intact
        assert gpu("nodewatch_gpu_power_watts", 1, odd) not in found

    async def test_gpus_stay_between_slow_readings_then_go(self, make_client: MakeClient) -> None:
        """GPU series are slow-tier: kept through heartbeats without them, gone after three slow periods."""
        plain = heartbeat(2)
        kept = series(await scrape(make_client, heartbeat(1, gpus=GPUS), plain))
        assert kept[gpu("nodewatch_gpu_power_watts", 0, "NVIDIA A100-SXM4-40GB")] == 271.234
        late = heartbeat(3, sampled_at=WALL_T0 + 17)
        gone = series(await scrape(make_client, heartbeat(1, gpus=GPUS), late))
        assert not any(name.startswith("nodewatch_gpu_") for name, _labels in gone)

    async def test_a_node_without_gpus_has_no_gpu_series(self, make_client: MakeClient) -> None:
        """A node that sends no gpus field has no GPU series, only the families' HELP and TYPE lines."""
        text = await scrape(make_client, heartbeat(1, tcp_established=3))
        assert not any(name.startswith("nodewatch_gpu_") for name, _labels in series(text))

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    async def test_promtool_passes_the_gpu_families(self, make_client: MakeClient) -> None:
        """promtool check metrics finds nothing to lint in an exposition with GPUs."""
        text = await scrape(make_client, heartbeat(1, gpus=GPUS))
        assert "nodewatch_gpu_power_watts{" in text
        promtool = await asyncio.create_subprocess_exec(
            "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await asyncio.wait_for(promtool.communicate(text.encode()), timeout=30)
        assert promtool.returncode == 0, output.decode()
