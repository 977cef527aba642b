"""Recorded numbers for the agent's tests: psutil- and pynvml-shaped objects whose readings the test sets, a clock."""

from __future__ import annotations

import threading
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

CpuTimes = namedtuple("CpuTimes", ["user", "nice", "system", "idle", "iowait", "guest"])
Memory = namedtuple("Memory", ["total", "available", "percent", "used"])
Swap = namedtuple("Swap", ["total", "used", "percent"])
Disk = namedtuple("Disk", ["read_bytes", "write_bytes"])
Nic = namedtuple("Nic", ["bytes_sent", "bytes_recv"])
Part = namedtuple("Part", ["device", "mountpoint", "fstype", "opts"])
Usage = namedtuple("Usage", ["total", "used", "free", "percent"])
Temp = namedtuple("Temp", ["label", "current", "high", "critical"])
Mem = namedtuple("Mem", ["rss"])


@dataclass
class FakeProcess:
    pid: int
    info: dict[str, Any]


@dataclass
class FakePsutil:
    """Set the attributes to the next reading; set ``fail`` to names of calls that raise."""

    total: Any = field(default_factory=lambda: CpuTimes(0, 0, 0, 0, 0, 0))
    cores: list[Any] = field(default_factory=lambda: [CpuTimes(0, 0, 0, 0, 0, 0)] * 2)
    disks: dict[str, Any] | None = field(default_factory=lambda: {"sda": Disk(0, 0), "sda1": Disk(0, 0)})
    nics: dict[str, Any] = field(default_factory=lambda: {"lo": Nic(0, 0), "eth0": Nic(0, 0), "wlan0": Nic(0, 0)})
    fail: set[str] = field(default_factory=set)
    processes: list[FakeProcess] = field(default_factory=list)

    def _check(self, name: str) -> None:
        if name in self.fail:
            raise OSError(f"{name} failed")

    def cpu_times(self, percpu: bool = False) -> Any:
        self._check("cpu_times")
        return self.cores if percpu else self.total

    def getloadavg(self) -> tuple[float, float, float]:
        self._check("getloadavg")
        return (0.5, 0.25, 0.125)

    def virtual_memory(self) -> Any:
        self._check("virtual_memory")
        return Memory(total=8_000, available=6_000, percent=25.04, used=2_000)

    def swap_memory(self) -> Any:
        self._check("swap_memory")
        return Swap(total=1_000, used=100, percent=10.0)

    def disk_io_counters(self, perdisk: bool = False, nowrap: bool = True) -> Any:
        self._check("disk_io_counters")
        return self.disks

    def net_io_counters(self, pernic: bool = False, nowrap: bool = True) -> Any:
        self._check("net_io_counters")
        return self.nics

    def disk_partitions(self, all: bool = False) -> list[Any]:
        return [
            Part("/dev/sda1", "/", "ext4", "rw"),
            Part("/dev/sdb1", "/data", "xfs", "rw"),
            Part("srv:/x", "/mnt/nfs", "nfs4", "rw"),
        ]

    def disk_usage(self, path: str) -> Any:
        self._check(f"disk_usage {path}")
        if path == "/mnt/nfs":
            raise AssertionError("disk_usage must never be called on a network mount")
        return Usage(total=100, used=40, free=60, percent=40.0)

    def pids(self) -> list[int]:
        self._check("pids")
        return [1, 2, 3]

    def sensors_temperatures(self) -> dict[str, list[Any]]:
        self._check("sensors_temperatures")
        return {"coretemp": [Temp("Core 0", 41.04, 80, 90), Temp("", 42.0, 80, 90), Temp("bad", 65535.0, 0, 0)]}

    def process_iter(self, attrs: list[str]) -> list[FakeProcess]:
        self._check("process_iter")
        return self.processes

    def boot_time(self) -> float:
        return 1_000.0

    def cpu_count(self, logical: bool = True) -> int:
        return 2


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# pynvml, as the agent calls it (agent.gpu); NVML is one of the fakes the house rules allow.
class NVMLError(Exception):
    """pynvml's error: one class, the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass(frozen=True)
class GpuUtilization:
    gpu: int
    memory: int


@dataclass(frozen=True)
class GpuMemory:
    total: int
    free: int
    used: int


@dataclass
class FakeGpu:
    """What one recorded GPU answers."""

    name: str | bytes
    busy_percent: int
    used_bytes: int
    total_bytes: int
    celsius: int
    milliwatts: int


@dataclass
class FakeNvml:
    """The part of pynvml the agent calls, answering from recorded GPUs; ``fail`` maps (query, index) -> code."""

    gpus: list[FakeGpu]
    fail: dict[tuple[str, int], int] = field(default_factory=dict)
    init_error: int | None = None
    hang: threading.Event | None = None  # given: the device count blocks until it is set (a hung driver)
    calls: list[str] = field(default_factory=list)
    NVMLError: type[NVMLError] = NVMLError

    def _answer(self, query: str, index: int) -> FakeGpu:
        self.calls.append(query)
        code = self.fail.get((query, index))
        if code is not None:
            raise NVMLError(code)
        return self.gpus[index]

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.calls.append("init")
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:  # noqa: N802 - pynvml's names
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml's names
        self.calls.append("count")
        if self.hang is not None:
            self.hang.wait(30.0)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802 - pynvml's names
        self._answer("handle", index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:  # noqa: N802 - pynvml's names
        return self._answer("name", handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> GpuUtilization:  # noqa: N802 - pynvml's names
        return GpuUtilization(gpu=self._answer("utilization", handle).busy_percent, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> GpuMemory:  # noqa: N802 - pynvml's names
        gpu = self._answer("memory", handle)
        return GpuMemory(total=gpu.total_bytes, free=gpu.total_bytes - gpu.used_bytes, used=gpu.used_bytes)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:  # noqa: N802 - pynvml's names
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return self._answer("temperature", handle).celsius

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802 - pynvml's names
        return self._answer("power", handle).milliwatts
