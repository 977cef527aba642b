"""A real agent on a node with NVML sends its GPUs: the collector shows them in /metrics; a hung driver stalls nothing.

Regression: the agent built its heartbeats without a GPU reader, so ``gpus`` never left a real
node even with nvidia-ml-py and a driver present. NVML itself is a stand-in module on the agent's
path (no GPU here), answering like one A100; for the hung driver, a fake pynvml passed to an
in-process agent whose device count blocks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from agent.config import AgentConfig
from agent.runner import Agent
from tests.support.processes import ProcessGroup
from tests.support.processes import wait_until as wait_for

from .fakes import FakeGpu, FakeNvml, FakePsutil
from .ingest_server import IngestServer, running, wait_until

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

        await wait_for(gpu_reported, 30.0, "the agent's GPU in /metrics")
    gpu_lines = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("nodewatch_gpu_")]
    lines = {parts[0]: parts[1] for parts in gpu_lines}
    power = next(v for k, v in lines.items() if k.startswith("nodewatch_gpu_power_watts{") and 'node="gpu-node"' in k)
    assert float(power) == 61.5
    used = next(v for k, v in lines.items() if k.startswith("nodewatch_gpu_memory_used_bytes{"))
    assert float(used) == 1_073_741_824


@dataclass
class HungDriver:
    """A node's NVML whose device count hangs until ``release`` is set, as a driver stuck in the kernel."""

    release: threading.Event
    nvml: FakeNvml


@pytest.fixture
def hung() -> Iterator[HungDriver]:
    """A hanging NVML with one A100 behind it, released at teardown so the agent's worker thread ends."""
    release = threading.Event()
    a100 = FakeGpu("NVIDIA A100-SXM4-40GB", 37, 1_073_741_824, 42_949_672_960, 41, 61_500)
    try:
        yield HungDriver(release, FakeNvml(gpus=[a100], hang=release))
    finally:
        release.set()


def gpu_agent(url: str, nvml: FakeNvml, tmp_path: Path) -> Agent:
    """An in-process agent at 0.1 s with recorded psutil numbers and ``nvml`` as its pynvml."""
    config = AgentConfig(ingest_url=url + "/api/v1/ingest", node_id="gpu-node", interval_s=0.1)
    return Agent(config, ps=FakePsutil(), cgroup_root=tmp_path, random_source=lambda: 0.2, nvml=nvml)


class TestHungDriver:
    async def test_heartbeats_flow_on_time_while_nvml_hangs(
        self, ingest_server: IngestServer, hung: HungDriver, tmp_path: Path
    ) -> None:
        """A GPU driver stuck in an NVML call costs the GPU figures, not one heartbeat or one tick.

        Regression: the GPUs were read on the agent's loop thread, so the first hung call stopped
        every heartbeat after it.
        """
        log = ingest_server.log
        async with running(gpu_agent(ingest_server.url, hung.nvml, tmp_path)):
            await wait_until(lambda: len(log.heartbeats) >= 15)
            assert "count" in hung.nvml.calls  # the GPU read started and is hanging now
            beats = list(log.heartbeats)
        assert [beat.seq for beat in beats] == list(range(1, len(beats) + 1))
        assert all(beat.gpus is None for beat in beats)  # absent, as docs/protocol.md 5.2 says of a lost reading
        assert all(beat.late_ticks is None for beat in beats)  # the tick loop never fell behind

    async def test_the_gpu_comes_back_when_the_driver_answers(
        self, ingest_server: IngestServer, hung: HungDriver, tmp_path: Path
    ) -> None:
        """Once the hung NVML call returns, the next heartbeat carries the GPU's figures."""
        log = ingest_server.log
        async with running(gpu_agent(ingest_server.url, hung.nvml, tmp_path)):
            await wait_until(lambda: len(log.heartbeats) >= 5)
            hung.release.set()
            await wait_until(lambda: any(beat.gpus for beat in log.heartbeats))
        carrying = next(beat for beat in log.heartbeats if beat.gpus)
        assert carrying.gpus is not None
        assert carrying.gpus[0].power_watts == 61.5
        assert carrying.gpus[0].memory_used_bytes == 1_073_741_824

    async def test_stop_does_not_wait_on_a_hung_driver(
        self, ingest_server: IngestServer, hung: HungDriver, tmp_path: Path
    ) -> None:
        """The agent stops within 2 s while NVML hangs, and does not call nvmlShutdown under the hung call."""
        log = ingest_server.log
        async with running(gpu_agent(ingest_server.url, hung.nvml, tmp_path)):
            await wait_until(lambda: len(log.heartbeats) >= 3 and "count" in hung.nvml.calls)
        assert "shutdown" not in hung.nvml.calls
