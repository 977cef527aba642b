"""CPU and memory limits of the agent's own cgroup, and of every cgroup above it.

Inside a container psutil reports the host's cores and memory; the cgroup
limits say what this node may really use. The agent's cgroup comes from
``/proc/self/cgroup``: ``0::/path`` for the unified (v2) hierarchy, and
``N:memory:/path`` or ``N:cpu,cpuacct:/path`` for v1 controllers. Each path
is resolved against its hierarchy's mount in ``/proc/self/mountinfo``,
whose root field says which cgroup is mounted there (a container sees its
own cgroup as the mount's root). A controller named on a v1 line lives on
v1; any other on v2 (the kernel binds each controller to one hierarchy).
Limits nest: the tightest of the agent's cgroup and its ancestors, up to
the mount, is the one in force (a pod's limit binds its containers).

Reading the mount's root cgroup instead reported no limits for an agent in a
1 GiB, 0.5-core cgroup (issue 14).

Not here: deciding whether we are in a container (``detect_container``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.procfs import HostPaths, MountEntry, read_mountinfo, read_text

# Where systemd and Docker mount the cgroup filesystems; used only when mountinfo cannot be read.
DEFAULT_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge page-aligned number, not as "max".
_V1_UNLIMITED_BYTES = 2**62


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """Limits in force; None when there is none (or none we could read)."""

    cpu_limit_cores: float | None = None
    memory_limit_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class OwnCgroup:
    """The agent's cgroup paths from ``/proc/self/cgroup``: the v2 one, and v1's by controller."""

    unified: str | None
    by_controller: dict[str, str]


def parse_proc_cgroup(text: str) -> OwnCgroup:
    """Parse ``hierarchy-id:controllers:path`` lines; named v1 hierarchies (``name=systemd``) are ignored."""
    unified = None
    by_controller: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            unified = path
            continue
        for controller in controllers.split(","):
            if controller and not controller.startswith("name="):
                by_controller[controller] = path
    return OwnCgroup(unified, by_controller)


def _read(path: Path) -> str | None:
    text = read_text(path)
    return None if text is None else text.strip()


def _parse_int(text: str | None) -> int | None:
    """A cgroup file's count; None for ``max``, v1's ``-1`` (no quota) and whatever else is no count."""
    return int(text) if text is not None and text.isdecimal() else None


def _cores(quota: int | None, period: int | None) -> float | None:
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _cpu_v2(directory: Path) -> float | None:
    parts = (_read(directory / "cpu.max") or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    return _cores(_parse_int(parts[0]), _parse_int(parts[1]))


def _memory_v2(directory: Path) -> int | None:
    value = _parse_int(_read(directory / "memory.max"))  # "max" parses as None: no limit
    return value if value is not None and value > 0 else None


def _cpu_v1(directory: Path) -> float | None:
    return _cores(_parse_int(_read(directory / "cpu.cfs_quota_us")), _parse_int(_read(directory / "cpu.cfs_period_us")))


def _memory_v1(directory: Path) -> int | None:
    value = _parse_int(_read(directory / "memory.limit_in_bytes"))
    if value is None or value <= 0 or value >= _V1_UNLIMITED_BYTES:
        return None
    return value


def _find_mount(mounts: Iterable[MountEntry], controller: str | None) -> MountEntry | None:
    """The v2 mount (controller None) or the v1 mount carrying ``controller``."""
    for entry in mounts:
        if controller is None and entry.fstype == "cgroup2":
            return entry
        if controller is not None and entry.fstype == "cgroup" and controller in entry.super_options:
            return entry
    return None


def _chain(mount_dir: Path, mount_root: str, path: str) -> list[Path]:
    """The agent's cgroup directory and each parent up to the mount's, innermost first."""
    relative = posixpath.relpath(posixpath.normpath(path), posixpath.normpath(mount_root))
    if relative == "." or relative.startswith(".."):
        # The mount's root is our cgroup, or we sit outside it (another cgroup namespace): read the mount.
        return [mount_dir]
    parts = relative.split("/")
    return [mount_dir.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _tightest(read: Callable[[Path], float | None], chain: list[Path]) -> float | None:
    values = [value for value in map(read, chain) if value is not None]
    return min(values) if values else None


def _limit(
    host: HostPaths,
    mounts: list[MountEntry] | None,
    path: str,
    *,
    controller: str | None,
    read: Callable[[Path], float | None],
    fallback_mount: Path,
) -> float | None:
    mount = _find_mount(mounts or [], controller)
    if mount is not None:
        return _tightest(read, _chain(host.mounted(mount.mount_point), mount.root, path))
    if mounts is not None:  # mountinfo was read and has no such hierarchy
        return None
    base = host.mounted(fallback_mount.as_posix())
    base = base if controller is None else base / controller
    return _tightest(read, _chain(base, "/", path))


def read_cgroup_limits(host: HostPaths | None = None, fallback_mount: Path = DEFAULT_ROOT) -> CgroupLimits:
    """Read the limits in force on the agent's own cgroup; never raises for missing files.

    ``fallback_mount`` is where the hierarchies are assumed mounted when
    mountinfo cannot be read.
    """
    host = host if host is not None else HostPaths()
    text = read_text(host.proc / "self" / "cgroup")
    if text is None:
        return CgroupLimits()
    own = parse_proc_cgroup(text)
    mounts = read_mountinfo(host)
    found: list[float | None] = []
    for controller, read_v1, read_v2 in (("cpu", _cpu_v1, _cpu_v2), ("memory", _memory_v1, _memory_v2)):
        if controller in own.by_controller:
            path, hierarchy, read = own.by_controller[controller], controller, read_v1
        elif own.unified is not None:
            path, hierarchy, read = own.unified, None, read_v2
        else:
            found.append(None)
            continue
        found.append(_limit(host, mounts, path, controller=hierarchy, read=read, fallback_mount=fallback_mount))
    cpu, memory = found
    return CgroupLimits(cpu, None if memory is None else int(memory))


def detect_container(root: Path = Path("/")) -> bool:
    """True if the usual container markers are present (Docker, Podman, Kubernetes)."""
    if (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists():
        return True
    cgroups = _read(root / "proc" / "1" / "cgroup") or ""
    return any(marker in cgroups for marker in ("docker", "kubepods", "containerd", "libpod", "lxc"))
