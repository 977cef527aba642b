"""Mount filtering: real local filesystems only, one mount point per device."""

from __future__ import annotations

import pytest

from agent.mounts import Partition, is_measurable, select_mounts


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
