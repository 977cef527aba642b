"""Where the agent reads the kernel's files, and the one parser they share: ``/proc/self/mountinfo``.

``HostPaths`` names the procfs, the sysfs and the root the mount points of
mountinfo are relative to, like node_exporter's ``--path.procfs``,
``--path.sysfs`` and ``--path.rootfs``. Production uses /proc, /sys and /;
tests point all three at a recorded tree (``HostPaths.under(tree)``).
Not here: what any one file means (``agent.netdev``, ``agent.blockdev``,
``agent.mounts``, ``agent.cgroup``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# mountinfo escapes space, tab, newline and backslash as \ooo (fs/proc_namespace.c, show_mountinfo).
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class HostPaths:
    """The procfs and sysfs to read, and the root that mount points are resolved under."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    rootfs: Path = Path("/")

    @classmethod
    def under(cls, root: Path) -> HostPaths:
        """Paths of a whole recorded tree: ``root/proc``, ``root/sys``, and mounts under ``root``."""
        return cls(proc=root / "proc", sys=root / "sys", rootfs=root)

    def mounted(self, mount_point: str) -> Path:
        """The path of a mountinfo mount point (absolute in this mount namespace) under ``rootfs``."""
        return self.rootfs / mount_point.lstrip("/")


def read_text(path: Path) -> str | None:
    """The file's text, or None if it cannot be read: a missing kernel file means "not measured"."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class MountEntry(NamedTuple):
    """One line of mountinfo (proc(5)), the fields the agent uses."""

    root: str  # the directory of the filesystem that is mounted here ("/" for a whole filesystem)
    mount_point: str
    mount_options: frozenset[str]  # per-mount: "ro" or "rw", "nosuid", ...
    fstype: str
    source: str
    super_options: frozenset[str]  # per-superblock: for cgroup v1, the controllers ("memory", "cpu")


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text; malformed lines are skipped, never raised on.

    A line is ``id parent major:minor root mount-point options [optional...] - fstype source super-options``;
    the optional fields end at the lone "-".
    """
    entries = []
    for line in text.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < dash + 3:
            continue
        entries.append(
            MountEntry(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                mount_options=frozenset(fields[5].split(",")),
                fstype=fields[dash + 1],
                source=_unescape(fields[dash + 2]),
                super_options=frozenset(fields[dash + 3].split(",")) if len(fields) > dash + 3 else frozenset(),
            )
        )
    return entries


def read_mountinfo(host: HostPaths) -> list[MountEntry] | None:
    """The agent's own mount table, or None where there is no procfs (macOS, Windows)."""
    text = read_text(host.proc / "self" / "mountinfo")
    return None if text is None else parse_mountinfo(text)
