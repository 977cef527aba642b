"""GPU readings: exact NVML figures in the slow-tier heartbeat, nothing at all (not even an import) without NVML."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent.gpu import NVML_MODULE, GpuReader, GpuSample, with_gpus
from agent.heartbeat import HeartbeatBuilder, SlowCache
from agent.procfs import HostPaths
from agent.readings import SlowReading
from agent.sampler import PsutilReader
from agent.wire import pack
from shared.codec import decode, encode
from shared.limits import MAX_GPUS
from shared.messages import GpuReading, Heartbeat

from .fakes import FakeClock, FakeGpu, FakeNvml, FakePsutil

GIB = 1024**3
NOT_SUPPORTED = 3  # nvml.h NVML_ERROR_NOT_SUPPORTED
UNKNOWN = 999  # nvml.h NVML_ERROR_UNKNOWN
LIBRARY_NOT_FOUND = 12  # nvml.h NVML_ERROR_LIBRARY_NOT_FOUND


def two_gpus(**fail: int) -> FakeNvml:
    """An A100 and an older board whose pynvml gives the name as bytes; ``fail`` as ``power_1=999``."""
    failures = {(key.rsplit("_", 1)[0], int(key.rsplit("_", 1)[1])): code for key, code in fail.items()}
    return FakeNvml(
        gpus=[
            FakeGpu("NVIDIA A100-SXM4-40GB", 87, 30 * GIB, 40 * GIB, 64, 271_234),
            FakeGpu(b"Tesla T4", 0, 0, 15 * GIB, 31, 9_876),
        ],
        fail=failures,
    )


A100 = {
    "index": 0,
    "name": "NVIDIA A100-SXM4-40GB",
    "utilization_percent": 87.0,
    "memory_used_bytes": 30 * GIB,
    "memory_total_bytes": 40 * GIB,
    "temperature_celsius": 64.0,
    "power_watts": 271.234,
}
T4 = {
    "index": 1,
    "name": "Tesla T4",
    "utilization_percent": 0.0,
    "memory_used_bytes": 0,
    "memory_total_bytes": 15 * GIB,
    "temperature_celsius": 31.0,
    "power_watts": 9.876,
}


def heartbeats(tmp_path: Path, gpu: GpuReader | None, seconds: int = 6) -> list[Heartbeat]:
    """1 Hz heartbeats of a fake node, the slow tier fresh at seconds 1 and 6, each checked byte for byte."""
    ps, clock = FakePsutil(), FakeClock()
    reader = PsutilReader(
        ps, clock=clock, wall_clock=lambda: 1_700_000_000.0 + clock.now, host=HostPaths.under(tmp_path)
    )
    builder = HeartbeatBuilder(boot_time_at=1_690_000_000.0)
    cache = SlowCache(refresh_s=5.0, max_age_s=15.0)
    builder.prime(reader.read_fast())
    beats = []
    for second in range(1, seconds + 1):
        clock.advance(1.0)
        slow: SlowReading | None = None
        if second % 5 == 1:  # what the agent's slow-read worker does: the slow reading, then the GPUs
            fresh = reader.read_slow() if gpu is None else with_gpus(reader.read_slow(), gpu)
            slow = cache.store(fresh, clock.now)
        else:
            slow = cache.reuse(clock.now)
        frame = pack(builder.build(second, reader.read_fast(), slow))
        beat = decode(frame)
        assert isinstance(beat, Heartbeat)
        assert encode(beat) == frame  # the agent's map is exactly what shared.codec sends
        beats.append(beat)
    return beats


def dumped(gpus: Sequence[GpuReading] | None) -> list[dict[str, Any]] | None:
    return None if gpus is None else [gpu.model_dump(exclude_none=True) for gpu in gpus]


class TestReadings:
    def test_exact_figures_in_the_slow_heartbeat(self, tmp_path: Path) -> None:
        """The heartbeat with a fresh slow reading carries each GPU's exact figures: bytes as NVML gives, mW as W."""
        beats = heartbeats(tmp_path, GpuReader(two_gpus()))
        assert dumped(beats[0].gpus) == [A100, T4]
        assert dumped(beats[5].gpus) == [A100, T4]
        assert beats[0].sample_errors is None

    def test_only_the_slow_heartbeats_read_and_carry_gpus(self, tmp_path: Path) -> None:
        """Between fresh slow readings the GPUs are neither queried nor sent, like the other details."""
        nvml = two_gpus()
        beats = heartbeats(tmp_path, GpuReader(nvml))
        assert [beat.gpus is not None for beat in beats] == [True, False, False, False, False, True]
        assert nvml.calls.count("init") == 1
        assert nvml.calls.count("count") == 2

    def test_one_failed_query_drops_that_value_only(self, tmp_path: Path) -> None:
        """An NVML error on one GPU's power leaves that value out, keeps the rest, and counts in sample_errors."""
        beats = heartbeats(tmp_path, GpuReader(two_gpus(power_1=UNKNOWN)))
        without_power = {key: value for key, value in T4.items() if key != "power_watts"}
        assert dumped(beats[0].gpus) == [A100, without_power]
        assert beats[0].sample_errors == 1
        assert beats[5].sample_errors == 2  # cumulative: it failed again five seconds later

    def test_unsupported_query_is_absent_not_an_error(self, tmp_path: Path) -> None:
        """A board that cannot report its power (NVML_ERROR_NOT_SUPPORTED) just has no power figure."""
        beats = heartbeats(tmp_path, GpuReader(two_gpus(power_0=NOT_SUPPORTED, utilization_0=NOT_SUPPORTED)))
        found = dumped(beats[0].gpus)
        assert found is not None
        assert found[0] == {
            key: value for key, value in A100.items() if key not in {"power_watts", "utilization_percent"}
        }
        assert beats[0].sample_errors is None

    def test_a_gpu_without_a_handle_is_left_out(self) -> None:
        """A GPU NVML cannot open is skipped and counted; the others are still read."""
        sample = GpuReader(two_gpus(handle_0=UNKNOWN)).read()
        assert sample == GpuSample(gpus=[T4], errors=1)

    def test_at_most_max_gpus(self) -> None:
        """A node with more GPUs than the wire allows sends the first MAX_GPUS by index."""
        nvml = FakeNvml(gpus=[FakeGpu(f"gpu {i}", 1, 1, 2, 40, 1000) for i in range(MAX_GPUS + 4)])
        sample = GpuReader(nvml).read()
        assert sample.gpus is not None
        assert [gpu["index"] for gpu in sample.gpus] == list(range(MAX_GPUS))

    def test_close_shuts_nvml_down_once(self) -> None:
        """Closing the reader shuts NVML down once, and only if it was started."""
        unused, used = two_gpus(), two_gpus()
        GpuReader(unused).close()
        reader = GpuReader(used)
        reader.read()
        reader.close()
        reader.close()
        assert "shutdown" not in unused.calls
        assert used.calls.count("shutdown") == 1


class TestNoGpu:
    def test_no_gpu_sends_the_same_bytes_as_before(self, tmp_path: Path) -> None:
        """A node whose NVML sees no GPU sends byte for byte what it sent without GPU support (<= 600 B stays)."""
        with_reader = heartbeats(tmp_path, GpuReader(FakeNvml(gpus=[])))
        without = heartbeats(tmp_path, None)
        assert [encode(beat) for beat in with_reader] == [encode(beat) for beat in without]
        assert all(beat.gpus is None for beat in with_reader)

    def test_nvml_that_cannot_start_is_not_retried(self, tmp_path: Path) -> None:
        """Without a driver (nvmlInit fails) there is no gpus field, no sample error, and no second try."""
        nvml = FakeNvml(gpus=[], init_error=LIBRARY_NOT_FOUND)
        beats = heartbeats(tmp_path, GpuReader(nvml), seconds=11)
        assert all(beat.gpus is None and beat.sample_errors is None for beat in beats)
        assert nvml.calls == ["init"]


class ImportWatcher:
    """A finder first on ``sys.meta_path`` that notes every top-level import it is asked for, and finds nothing."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        self.asked.append(fullname)


@pytest.fixture
def imports() -> Iterator[ImportWatcher]:
    """Watch imports for the length of a test."""
    watcher = ImportWatcher()
    sys.meta_path.insert(0, watcher)
    try:
        yield watcher
    finally:
        sys.meta_path.remove(watcher)


@pytest.mark.skipif(importlib.util.find_spec(NVML_MODULE) is not None, reason="pynvml is installed here")
class TestWithoutNvidiaMlPy:
    def test_no_field_and_no_import(self, tmp_path: Path, imports: ImportWatcher) -> None:
        """Without nvidia-ml-py the heartbeats have no gpus field and pynvml is looked for once, on the first read."""
        reader = GpuReader()
        assert NVML_MODULE not in imports.asked  # building the reader imports nothing
        beats = heartbeats(tmp_path, reader, seconds=11)
        assert all(beat.gpus is None and beat.sample_errors is None for beat in beats)
        assert imports.asked.count(NVML_MODULE) == 1
        assert NVML_MODULE not in sys.modules


# A stand-in pynvml on the path of a child interpreter: a node with the extra installed but no driver.
_STAND_IN = """
class NVMLError(Exception):
    def __init__(self, value):
        self.value = value

def nvmlInit():
    raise NVMLError(12)  # NVML_ERROR_LIBRARY_NOT_FOUND: no driver
"""
_PROBE = """
import sys
import agent.gpu, agent.heartbeat, agent.runner
print("pynvml" in sys.modules)
reader = agent.gpu.GpuReader()
print("pynvml" in sys.modules)
print(reader.read())
print("pynvml" in sys.modules)
"""


def test_pynvml_is_imported_on_the_first_read_only(tmp_path: Path) -> None:
    """With nvidia-ml-py installed, importing the agent loads no pynvml; the first read does, and finds no driver."""
    (tmp_path / "pynvml.py").write_text(_STAND_IN)
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{root}", "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True
    )
    assert result.stdout.split("\n")[:4] == ["False", "False", "GpuSample(gpus=None, errors=0)", "True"]
