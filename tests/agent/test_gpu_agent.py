"""A real agent on a node with NVML sends its GPUs: the collector shows them in /metrics.

Regression: the agent built its heartbeats without a GPU reader, so ``gpus`` never left a real
node even with nvidia-ml-py and a driver present. NVML itself is a stand-in module on the agent's
path (no GPU here), answering like one A100.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import ProcessGroup, wait_until

REPO = Path(__file__).resolve().parents[2]
STAND_IN = """
class NVMLError(Exception):
    def __init__(self, value):
        self.value = value

class _Util:
    gpu = 37

class _Mem:
    used = 1_073_741_824
    total = 42_949_672_960

def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(index): return index
def nvmlDeviceGetName(handle): return "NVIDIA A100-SXM4-40GB"
def nvmlDeviceGetUtilizationRates(handle): return _Util()
def nvmlDeviceGetMemoryInfo(handle): return _Mem()
def nvmlDeviceGetTemperature(handle, sensor): return 41
def nvmlDeviceGetPowerUsage(handle): return 61_500
"""


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Collector and agent subprocesses, every one killed at teardown."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.close()


async def test_a_real_agent_reports_its_gpu(procs: ProcessGroup, tmp_path: Path) -> None:
    """With NVML importable, the GPU's busy share, memory, temperature and power reach /metrics."""
    nvml_dir = tmp_path / "nvml"
    nvml_dir.mkdir()
    (nvml_dir / "pynvml.py").write_text(STAND_IN)
    collector = procs.collector()
    procs.agent(
        collector.url,
        "gpu-node",
        "--interval",
        "0.5",
        "--state-dir",
        str(tmp_path / "state"),
        env={"PYTHONPATH": f"{nvml_dir}{os.pathsep}{REPO}"},
    )
    text = ""
    async with aiohttp.ClientSession() as session:

        async def gpu_reported() -> bool:
            nonlocal text
            async with session.get(f"{collector.url}/metrics") as resp:
                text = await resp.text()
            return "nodewatch_gpu_power_watts{" in text

        await wait_until(gpu_reported, 30.0, "the agent's GPU in /metrics")
    gpu_lines = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("nodewatch_gpu_")]
    lines = {parts[0]: parts[1] for parts in gpu_lines}
    power = next(v for k, v in lines.items() if k.startswith("nodewatch_gpu_power_watts{") and 'node="gpu-node"' in k)
    assert float(power) == 61.5
    used = next(v for k, v in lines.items() if k.startswith("nodewatch_gpu_memory_used_bytes{"))
    assert float(used) == 1_073_741_824
