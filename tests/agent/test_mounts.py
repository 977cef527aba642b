"""Mount filtering (real local filesystems only, one mount point per device) and usage as df computes it."""

from __future__ import annotations

import os

import pytest

from agent.mounts import (
    DiskUsage,
    Partition,
    block_fstypes,
    fullness_percent,
    is_measurable,
    partitions_from_mountinfo,
    select_mounts,
    usage_from_statvfs,
)
from agent.procfs import parse_mountinfo


def statvfs(*fields: int) -> os.statvfs_result:
    """A real statvfs result from (frsize, blocks, bfree, bavail, files, ffree), the fields df reads."""
    frsize, blocks, bfree, bavail, files, ffree = fields
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


class TestMounts:
    @pytest.mark.parametrize(
        ("fstype", "expected"),
        [
            ("ext4", True),
            ("xfs", True),
            ("btrfs", True),
            ("vfat", True),
            ("overlay", False),
            ("squashfs", False),
            ("tmpfs", False),
            ("proc", False),
            ("nfs", False),
            ("nfs4", False),
            ("cifs", False),
            ("fuse.sshfs", False),
            ("fuse", False),
            ("fuseblk", False),
            ("9p", False),
        ],
    )
    def test_is_measurable(self, fstype: str, expected: bool) -> None:
        """Only local real filesystems are measured; network and FUSE mounts could hang disk_usage."""
        assert is_measurable(fstype) is expected

    def test_select_mounts_dedupes_bind_mounts_and_skips_pseudo(self) -> None:
        """A container's bind mounts of the root disk collapse to '/', snaps and NFS are skipped."""
        parts = [
            Partition("/dev/vda", "/etc/hosts", "ext4"),
            Partition("/dev/vda", "/", "ext4"),
            Partition("/dev/vda", "/etc/resolv.conf", "ext4"),
            Partition("/dev/vdb1", "/data", "xfs"),
            Partition("/dev/loop3", "/snap/core/1", "squashfs"),
            Partition("server:/export", "/mnt/nfs", "nfs4"),
            Partition("overlay", "/var/lib/docker/x", "overlay"),
        ]
        assert select_mounts(parts) == ["/", "/data"]

    def test_select_mounts_from_mountinfo(self) -> None:
        """mountinfo rows select like psutil's: the bind-mounted /etc/hosts collapses into /, tmpfs is skipped."""
        entries = parse_mountinfo(
            "28 1 252:1 / / rw - ext4 /dev/vda1 rw\n"
            "34 28 252:1 /var/lib/docker/containers/a/hosts /etc/hosts rw - ext4 /dev/vda1 rw\n"
            "30 28 0:25 / /run rw - tmpfs tmpfs rw\n"
        )
        assert select_mounts(partitions_from_mountinfo(entries, None)) == ["/"]

    def test_only_block_filesystems_with_proc_filesystems(self) -> None:
        """With /proc/filesystems, nodev types (nfsd, say) are skipped even if no list names them; zfs is kept."""
        kinds = block_fstypes("nodev\tsysfs\nnodev\tnfsd\n\text4\nnodev\tzfs\n")
        entries = parse_mountinfo(
            "28 1 252:1 / / rw - ext4 /dev/vda1 rw\n"
            "40 28 0:50 / /proc/fs/nfsd rw - nfsd nfsd rw\n"
            "41 28 0:51 / /tank rw - zfs tank rw\n"
        )
        assert kinds == {"ext4"}
        assert select_mounts(partitions_from_mountinfo(entries, kinds)) == ["/", "/tank"]


class TestUsage:
    def test_ext4_root_reserve_is_not_available(self) -> None:
        """Used is blocks - bfree and available is bavail, so the 5 % reserve counts as neither."""
        usage = usage_from_statvfs(statvfs(4096, 1000, 150, 100, 64, 10), read_only=False)
        assert usage == DiskUsage(4_096_000, 3_481_600, 409_600, 64, 10, read_only=False)
        assert fullness_percent(usage) == pytest.approx(850 / 950 * 100)

    def test_filesystem_without_inodes(self) -> None:
        """vfat and btrfs report 0 inodes: inode counts are absent, not a full table."""
        usage = usage_from_statvfs(statvfs(512, 100, 50, 50, 0, 0))
        assert (usage.inodes_total, usage.inodes_free, usage.read_only) == (None, None, None)

    def test_empty_filesystem_has_no_fullness(self) -> None:
        """A filesystem with no blocks has no fullness rather than a division by zero."""
        assert fullness_percent(DiskUsage(0, 0, 0)) is None
