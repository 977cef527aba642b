"""cgroup v2 and v1 limits read from a fake cgroup tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cgroup import CgroupLimits, detect_container, read_cgroup_limits


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class TestCgroup:
    def test_v2_limits(self, tmp_path: Path) -> None:
        """cpu.max '150000 100000' is 1.5 cores; memory.max is bytes."""
        write(tmp_path, "cgroup.controllers", "cpu memory\n")
        write(tmp_path, "cpu.max", "150000 100000\n")
        write(tmp_path, "memory.max", "536870912\n")
        assert read_cgroup_limits(tmp_path) == CgroupLimits(1.5, 536870912)

    def test_v2_unlimited(self, tmp_path: Path) -> None:
        """'max' means no limit, reported as absent."""
        write(tmp_path, "cgroup.controllers", "cpu memory\n")
        write(tmp_path, "cpu.max", "max 100000\n")
        write(tmp_path, "memory.max", "max\n")
        assert read_cgroup_limits(tmp_path) == CgroupLimits(None, None)

    def test_v1_limits(self, tmp_path: Path) -> None:
        """v1 quota/period and limit_in_bytes are read from the controller directories."""
        write(tmp_path, "cpu/cpu.cfs_quota_us", "50000\n")
        write(tmp_path, "cpu/cpu.cfs_period_us", "100000\n")
        write(tmp_path, "memory/memory.limit_in_bytes", "1073741824\n")
        assert read_cgroup_limits(tmp_path) == CgroupLimits(0.5, 1073741824)

    def test_v1_unlimited(self, tmp_path: Path) -> None:
        """v1's -1 quota and page-aligned huge limit mean no limit."""
        write(tmp_path, "cpu/cpu.cfs_quota_us", "-1\n")
        write(tmp_path, "cpu/cpu.cfs_period_us", "100000\n")
        write(tmp_path, "memory/memory.limit_in_bytes", "9223372036854771712\n")
        assert read_cgroup_limits(tmp_path) == CgroupLimits(None, None)

    @pytest.mark.parametrize("garbage", ["", "abc", "1 2 3", "0 0"])
    def test_garbage_is_no_limit(self, tmp_path: Path, garbage: str) -> None:
        """Unreadable values never raise; they read as no limit."""
        write(tmp_path, "cgroup.controllers", "")
        write(tmp_path, "cpu.max", garbage)
        write(tmp_path, "memory.max", garbage)
        assert read_cgroup_limits(tmp_path) == CgroupLimits(None, None)

    def test_missing_tree_is_no_limit(self, tmp_path: Path) -> None:
        """A machine without cgroup files reports no limits."""
        assert read_cgroup_limits(tmp_path / "absent") == CgroupLimits(None, None)

    def test_detect_container(self, tmp_path: Path) -> None:
        """/.dockerenv or a kubepods cgroup mark a container; a bare root does not."""
        assert not detect_container(tmp_path)
        write(tmp_path, "proc/1/cgroup", "0::/kubepods/burstable/pod1\n")
        assert detect_container(tmp_path)
