"""CPU and memory limits of the agent's own cgroup, read from the cgroup filesystem.

Inside a container psutil reports the host's cores and memory; the cgroup
limits say what this node may really use. v2 (``cpu.max``, ``memory.max``)
is tried first, then v1 (``cpu/cpu.cfs_quota_us``, ``memory/memory.limit_in_bytes``).
Not here: deciding whether we are in a container (see ``detect_container``).
The root path is a parameter so tests use a temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge page-aligned number, not as "max".
_V1_UNLIMITED_BYTES = 2**62


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """Limits in force; None when there is none (or none we could read)."""

    cpu_limit_cores: float | None = None
    memory_limit_bytes: int | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cpu_v2(text: str | None) -> float | None:
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = _parse_int(parts[0]), _parse_int(parts[1])
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _memory_v2(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    value = _parse_int(text)
    return value if value is not None and value > 0 else None


def _cpu_v1(root: Path) -> float | None:
    quota = _parse_int(_read(root / "cpu" / "cpu.cfs_quota_us"))
    period = _parse_int(_read(root / "cpu" / "cpu.cfs_period_us"))
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _memory_v1(root: Path) -> int | None:
    value = _parse_int(_read(root / "memory" / "memory.limit_in_bytes"))
    if value is None or value <= 0 or value >= _V1_UNLIMITED_BYTES:
        return None
    return value


def read_cgroup_limits(root: Path = DEFAULT_ROOT) -> CgroupLimits:
    """Read the limits of the cgroup mounted at ``root``; never raises for missing files."""
    if (root / "cgroup.controllers").exists():
        return CgroupLimits(_cpu_v2(_read(root / "cpu.max")), _memory_v2(_read(root / "memory.max")))
    return CgroupLimits(_cpu_v1(root), _memory_v1(root))


def detect_container(root: Path = Path("/")) -> bool:
    """True if the usual container markers are present (Docker, Podman, Kubernetes)."""
    if (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists():
        return True
    cgroups = _read(root / "proc" / "1" / "cgroup") or ""
    return any(marker in cgroups for marker in ("docker", "kubepods", "containerd", "libpod", "lxc"))
