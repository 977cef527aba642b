"""Which mount points the agent reports disk usage for, and their usage as ``df`` computes it.

Pure: takes mountinfo or ``psutil.disk_partitions()``-shaped rows and
returns mount points; turns a ``statvfs`` result into bytes and inodes.
Not here: calling ``statvfs`` (``agent.sampler`` does, in a worker thread).

Usage follows coreutils ``df``: used is ``blocks - bfree``, available is
``bavail`` (what a non-root user may still write), and fullness is
``used / (used + available)``. The difference is the root reserve, 5 % of
every ext4 by default: ``used / total`` showed 10 % where ``df`` showed
25 % (issue 14).

Network and FUSE filesystems are never measured: ``statvfs`` on a dead NFS
or sshfs mount blocks in the kernel forever, and no timeout can get the
thread back. Pseudo, overlay, squashfs and erofs mounts say nothing about the
node's disks (squashfs snaps and erofs images are always 100 % full).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple, TypeAlias

from agent.procfs import MountEntry

PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "overlayfs", "proc",
        "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
        "iso9660", "udf", "aufs", "shm", "none", "", "erofs",
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


def block_fstypes(text: str) -> frozenset[str]:
    """The filesystem types of ``/proc/filesystems`` that need a block device (no ``nodev`` mark)."""
    kinds = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 1:
            kinds.add(fields[0])
    return frozenset(kinds)


def partitions_from_mountinfo(entries: Iterable[MountEntry], block_kinds: frozenset[str] | None) -> list[Partition]:
    """The mountinfo lines as partitions, for ``select_mounts``.

    With ``block_kinds`` (from ``block_fstypes``) only filesystems on a block device are kept,
    as ``psutil.disk_partitions(all=False)`` does, and zfs, which has none but is a real disk.
    """
    return [
        Partition(entry.source, entry.mount_point, entry.fstype)
        for entry in entries
        if block_kinds is None or entry.fstype in block_kinds or entry.fstype == "zfs"
    ]


# What usage reads of statvfs(2): f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree.
Statvfs: TypeAlias = os.statvfs_result


class DiskUsage(NamedTuple):
    """One filesystem's size and use; inode counts and the read-only flag are None when not known."""

    total_bytes: int
    used_bytes: int
    available_bytes: int  # to a non-root user: df's "Avail"
    inodes_total: int | None = None
    inodes_free: int | None = None
    read_only: bool | None = None


def usage_from_statvfs(result: Statvfs, *, read_only: bool | None = None) -> DiskUsage:
    """Bytes and inodes as ``df`` and ``df -i`` compute them (coreutils src/df.c)."""
    block = result.f_frsize
    return DiskUsage(
        total_bytes=result.f_blocks * block,
        used_bytes=max(0, result.f_blocks - result.f_bfree) * block,
        available_bytes=max(0, result.f_bavail) * block,
        inodes_total=result.f_files if result.f_files > 0 else None,  # 0 on btrfs and vfat: not counted
        inodes_free=result.f_ffree if result.f_files > 0 else None,
        read_only=read_only,
    )


def fullness_percent(usage: DiskUsage) -> float | None:
    """``df``'s Use%: used / (used + available) x 100, unrounded; None for an empty filesystem."""
    room = usage.used_bytes + usage.available_bytes
    return None if room <= 0 else usage.used_bytes / room * 100.0
