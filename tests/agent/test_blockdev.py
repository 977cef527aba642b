"""/proc/diskstats parsing and which block devices the totals count, on the recorded stacked tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.blockdev import DiskStats, counted_disks, parse_diskstats, partition_names, read_diskstats
from agent.procfs import HostPaths

STACKED = Path(__file__).parent / "trees" / "stacked"


class TestDiskstats:
    def test_recorded_counters(self) -> None:
        """Sectors become bytes at 512 each, whatever the device's own sector size."""
        stats = read_diskstats(HostPaths.under(STACKED))
        assert stats is not None
        assert stats["vda"] == DiskStats(90_000, 2_048_000_000, 9_000, 80_000, 3_072_000_000, 8_000, 8_500)
        assert len(stats) == 12

    @pytest.mark.parametrize("line", ["8 0 sda 1 2 3", "8 0 sda " + "x " * 11, ""])
    def test_malformed_lines_are_skipped(self, line: str) -> None:
        """A short or non-numeric line is left out, never raised on."""
        assert parse_diskstats(line) == {}

    def test_whole_physical_disks_only(self) -> None:
        """Partitions, loop, ram, zram, dm-crypt and md RAID are left out; their disks count."""
        stats = read_diskstats(HostPaths.under(STACKED))
        assert stats is not None
        assert counted_disks(stats, STACKED / "sys") == {"vda", "sdb", "sdc", "nvme0n1"}

    def test_without_sysfs_names_decide(self, tmp_path: Path) -> None:
        """With no /sys/block, partitions and the virtual kinds are still recognised by name."""
        names = ["sda", "sda1", "nvme0n1", "nvme0n1p2", "loop0", "dm-0", "md127", "zram0", "xvda"]
        assert counted_disks(names, tmp_path) == {"sda", "nvme0n1", "xvda"}


class TestPartitionNames:
    @pytest.mark.parametrize(
        ("names", "expected"),
        [
            (["sda", "sda1", "sda2"], {"sda1", "sda2"}),
            (["nvme0n1", "nvme0n1p1"], {"nvme0n1p1"}),
            (["mmcblk0", "mmcblk0p1"], {"mmcblk0p1"}),
            (["loop0", "loop1", "dm-0", "sr0"], set()),
            (["vda"], set()),
        ],
    )
    def test_partitions_are_found(self, names: list[str], expected: set[str]) -> None:
        """Partitions of a listed disk are recognised so their bytes are not counted twice."""
        assert partition_names(names) == expected
