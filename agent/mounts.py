"""Which mount points the agent reports disk usage for.

Pure: takes ``psutil.disk_partitions()``-shaped rows, returns mount points.
Not here: calling ``disk_usage`` (``agent.sampler`` does, in a worker thread).

Network and FUSE filesystems are never measured: ``statvfs`` on a dead NFS
or sshfs mount blocks in the kernel forever, and no timeout can get the
thread back. Pseudo, overlay and squashfs mounts say nothing about the
node's disks (squashfs snaps are always 100 % full).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "overlayfs", "proc",
        "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
        "iso9660", "udf", "aufs", "shm", "none", "",
    }
)  # fmt: skip
NETWORK_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "sshfs", "fuse", "fuseblk", "9p", "afs",
        "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "davfs", "ncpfs", "virtiofs", "webdav",
    }
)  # fmt: skip


class Partition(NamedTuple):
    """The three fields of ``psutil._common.sdiskpart`` that the filter needs."""

    device: str
    mountpoint: str
    fstype: str


def is_measurable(fstype: str) -> bool:
    """True if a filesystem of this type is local and real, so ``disk_usage`` on it cannot hang."""
    kind = fstype.lower()
    if kind in PSEUDO_FSTYPES or kind in NETWORK_FSTYPES:
        return False
    return not kind.startswith(("fuse.", "nfs"))


def select_mounts(partitions: Iterable[Partition]) -> list[str]:
    """Return the mount points to measure, one per device (the shortest path), sorted.

    One per device because bind mounts (a container's /etc/hosts, for
    instance) repeat the same filesystem under other names.
    """
    by_device: dict[str, str] = {}
    for part in partitions:
        if not is_measurable(part.fstype):
            continue
        current = by_device.get(part.device)
        if current is None or (len(part.mountpoint), part.mountpoint) < (len(current), current):
            by_device[part.device] = part.mountpoint
    return sorted(by_device.values())
