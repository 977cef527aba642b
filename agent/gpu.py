"""The GPU reader: NVIDIA GPUs through NVML (``pynvml``, from the optional ``nodewatch[gpu]`` extra), as wire maps.

- ``GpuReader.read()`` gives each GPU's utilization, memory, temperature and power draw,
  as the maps of ``shared.messages.GpuReading``; or None when the node has no GPU, no
  ``pynvml``, or no driver. Then the heartbeat has no ``gpus`` field and the reader costs
  nothing more: it gives up on its first read and never tries again.
- ``pynvml`` is imported on that first read, never when this module is imported: an agent
  without the extra never loads it, and one with it loads it once.
- An NVML error in one query drops that value only and counts one sample error (logged once
  per query). "Not supported" is no error: many boards cannot report power or utilization,
  and the value is simply absent, every time.

``with_gpus`` adds a read to a slow reading. The agent calls it in the slow-read worker thread
(``agent.runner``), never on its loop: a hung driver (an NVML call that never returns) then
holds that thread, and costs the slow tier's fields (docs/protocol.md 5.2: absent, then gone
after three slow periods), not the heartbeats.

The ``nvml`` module object is injected (tests pass a fake); None means ``import pynvml``.
Not here: when to read (``agent.runner``, with the slow tier), other vendors (the wire
fields are vendor-neutral, docs/protocol.md 5.2).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from agent.readings import Attempts, SlowReading
from agent.wire import WireDict
from shared.limits import MAX_GPUS, MAX_SHORT_TEXT

log = logging.getLogger(__name__)

T = TypeVar("T")

NVML_MODULE = "pynvml"  # what nvidia-ml-py installs (NVIDIA's own binding, pypi.org/project/nvidia-ml-py)
_TEMPERATURE_GPU = 0  # nvml.h NVML_TEMPERATURE_GPU: the die's sensor
_ERROR_NOT_SUPPORTED = 3  # nvml.h NVML_ERROR_NOT_SUPPORTED: this device cannot answer that query
_MIN_CELSIUS, _MAX_CELSIUS = -273.15, 1000.0  # the wire's bounds


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One read of every GPU: the wire maps (None: no GPU) and how many queries failed."""

    gpus: list[WireDict] | None = None
    errors: int = 0


def _text(value: object) -> str:
    """A device name: pynvml before 11.5 returns bytes, later ones str."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text[:MAX_SHORT_TEXT]


class GpuReader:
    """Reads every GPU through an NVML module, started on the first ``read()``; one thread at a time."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml
        self._started: bool | None = None  # None: not tried yet; False: no NVML, never tried again
        self._attempts = Attempts()

    def read(self) -> GpuSample:
        """Every GPU's figures, or an empty sample without NVML or GPUs."""
        if not self._start():
            return GpuSample()
        nvml, attempts = self._nvml, self._attempts
        before = attempts.errors
        count = self._query("gpu count", nvml.nvmlDeviceGetCount)
        gpus = []
        for index in range(min(count or 0, MAX_GPUS)):
            handle = self._query(f"gpu{index} handle", functools.partial(nvml.nvmlDeviceGetHandleByIndex, index))
            if handle is not None:
                gpus.append(self._device(index, handle))
        return GpuSample(gpus or None, attempts.errors - before)

    def close(self) -> None:
        """Shut NVML down if this reader started it."""
        if self._started:
            self._started = False
            self._query("shutdown", self._nvml.nvmlShutdown)

    def _start(self) -> bool:
        if self._started is None:
            self._started = False
            if self._nvml is None:
                try:
                    self._nvml = importlib.import_module(NVML_MODULE)
                except ImportError:
                    log.debug("no GPU readings: %s is not installed (pip install 'nodewatch[gpu]')", NVML_MODULE)
                    return False
            try:
                self._nvml.nvmlInit()
            except self._nvml.NVMLError as exc:  # no driver, or no NVIDIA GPU: libnvidia-ml is absent
                log.info("no GPU readings: NVML did not start: %r", exc)
                return False
            self._started = True
        return self._started is True

    def _query(self, name: str, call: Callable[[], T]) -> T | None:
        """``call()``; None if the device does not support it, or (one error counted) if it failed."""
        error = self._nvml.NVMLError

        def supported() -> T | None:
            try:
                return call()
            except error as exc:
                if getattr(exc, "value", None) == _ERROR_NOT_SUPPORTED:
                    return None
                raise

        return self._attempts.run(name, supported)

    def _device(self, index: int, handle: object) -> WireDict:
        """One GPU's map, in ``GpuReading``'s field order, absent values left out."""
        nvml = self._nvml
        tag = f"gpu{index}"
        name = self._query(f"{tag} name", lambda: nvml.nvmlDeviceGetName(handle))
        rates = self._query(f"{tag} utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        memory = self._query(f"{tag} memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        celsius = self._query(f"{tag} temperature", lambda: nvml.nvmlDeviceGetTemperature(handle, _TEMPERATURE_GPU))
        milliwatts = self._query(f"{tag} power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        fields: WireDict = {
            "index": index,
            "name": _text(name) if name is not None else None,
            # nvmlUtilization_t.gpu: percent of the last sample period (1/6 s to 1 s) a kernel ran.
            "utilization_percent": min(100.0, max(0.0, float(rates.gpu))) if rates is not None else None,
            "memory_used_bytes": int(memory.used) if memory is not None else None,
            "memory_total_bytes": int(memory.total) if memory is not None else None,
            "temperature_celsius": float(celsius)
            if celsius is not None and _MIN_CELSIUS <= float(celsius) <= _MAX_CELSIUS
            else None,
            # nvmlDeviceGetPowerUsage: milliwatts, the whole board.
            "power_watts": round(max(0, int(milliwatts)) / 1000.0, 3) if milliwatts is not None else None,
        }
        return {key: value for key, value in fields.items() if value is not None}


def with_gpus(reading: SlowReading, gpu: GpuReader) -> SlowReading:
    """``reading`` with the GPUs read now, their failed queries added to its errors."""
    sample = gpu.read()
    return replace(reading, gpus=sample.gpus, errors=reading.errors + sample.errors)
