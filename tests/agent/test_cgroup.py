"""cgroup limits of the agent's own cgroup, v2 and v1, read from trees made by the test.

The recorded Kubernetes (v2) and Docker (v1 hybrid) trees are replayed in
test_accuracy.py; these cover the other layouts and bad input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cgroup import CgroupLimits, OwnCgroup, detect_container, parse_proc_cgroup, read_cgroup_limits
from agent.procfs import HostPaths

V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def limits(root: Path) -> CgroupLimits:
    return read_cgroup_limits(HostPaths.under(root))


class TestParseProcCgroup:
    def test_v2_and_v1_lines(self) -> None:
        """The unified path and each v1 controller's path are found; named hierarchies are ignored."""
        text = "12:memory:/docker/a\n11:cpu,cpuacct:/docker/a\n1:name=systemd:/docker/a\n0::/docker/a\n"
        assert parse_proc_cgroup(text) == OwnCgroup("/docker/a", {"memory": "/docker/a", "cpu": "/docker/a",
                                                                  "cpuacct": "/docker/a"})  # fmt: skip

    @pytest.mark.parametrize("text", ["", "garbage\n", "0::relative\n", "1:cpu\n"])
    def test_garbage_lines_are_skipped(self, text: str) -> None:
        """Lines without three fields and an absolute path say nothing about our cgroup."""
        assert parse_proc_cgroup(text) == OwnCgroup(None, {})


class TestOwnCgroupLimits:
    def test_v2_own_cgroup_below_the_mount(self, tmp_path: Path) -> None:
        """A systemd service's own cpu.max '150000 100000' is 1.5 cores; memory.max is bytes."""
        write(tmp_path, "proc/self/cgroup", "0::/system.slice/nodewatch.service\n")
        write(tmp_path, "proc/self/mountinfo", V2_MOUNT)
        write(tmp_path, "sys/fs/cgroup/system.slice/nodewatch.service/cpu.max", "150000 100000\n")
        write(tmp_path, "sys/fs/cgroup/system.slice/nodewatch.service/memory.max", "536870912\n")
        write(tmp_path, "sys/fs/cgroup/system.slice/memory.max", "max\n")
        assert limits(tmp_path) == CgroupLimits(1.5, 536870912)

    def test_tighter_parent_wins(self, tmp_path: Path) -> None:
        """A parent's smaller memory.max binds a child that asks for more."""
        write(tmp_path, "proc/self/cgroup", "0::/a/b\n")
        write(tmp_path, "proc/self/mountinfo", V2_MOUNT)
        write(tmp_path, "sys/fs/cgroup/a/memory.max", "1000000\n")
        write(tmp_path, "sys/fs/cgroup/a/b/memory.max", "2000000\n")
        assert limits(tmp_path) == CgroupLimits(None, 1000000)

    def test_cgroup_namespace_sees_its_cgroup_at_the_mount(self, tmp_path: Path) -> None:
        """In a container with its own cgroup namespace, '0::/' is the mount itself, which holds the limits."""
        write(tmp_path, "proc/self/cgroup", "0::/\n")
        write(tmp_path, "proc/self/mountinfo", V2_MOUNT)
        write(tmp_path, "sys/fs/cgroup/cpu.max", "50000 100000\n")
        write(tmp_path, "sys/fs/cgroup/memory.max", "1073741824\n")
        assert limits(tmp_path) == CgroupLimits(0.5, 1073741824)

    def test_v1_mount_root_is_the_containers_cgroup(self, tmp_path: Path) -> None:
        """Docker on v1 without a cgroup namespace mounts /docker/ID itself; its files are the limits."""
        write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
        write(tmp_path, "proc/self/mountinfo",
              "35 25 0:33 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
              "31 25 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n")  # fmt: skip
        write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n")
        write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
        write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        assert limits(tmp_path) == CgroupLimits(2.0, 268435456)

    def test_v1_unlimited(self, tmp_path: Path) -> None:
        """v1's -1 quota and page-aligned huge limit mean no limit."""
        write(tmp_path, "proc/self/cgroup", "4:memory:/\n3:cpu:/\n")
        write(tmp_path, "proc/self/mountinfo",
              "35 25 0:33 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
              "31 25 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")  # fmt: skip
        write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
        write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
        write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
        assert limits(tmp_path) == CgroupLimits(None, None)

    def test_without_mountinfo_the_usual_mount_is_assumed(self, tmp_path: Path) -> None:
        """Where mountinfo cannot be read, the hierarchy is looked for at /sys/fs/cgroup under the root."""
        write(tmp_path, "proc/self/cgroup", "0::/app\n")
        write(tmp_path, "sys/fs/cgroup/app/memory.max", "4096\n")
        assert limits(tmp_path) == CgroupLimits(None, 4096)

    def test_mountinfo_without_the_hierarchy_is_no_limit(self, tmp_path: Path) -> None:
        """A cgroup whose hierarchy is not mounted here has no limit we can read, not a guessed one."""
        write(tmp_path, "proc/self/cgroup", "0::/app\n")
        write(tmp_path, "proc/self/mountinfo", "28 1 252:1 / / rw - ext4 /dev/vda1 rw\n")
        write(tmp_path, "sys/fs/cgroup/app/memory.max", "4096\n")
        assert limits(tmp_path) == CgroupLimits(None, None)

    @pytest.mark.parametrize("garbage", ["", "abc", "1 2 3", "0 0", "-5 100000"])
    def test_garbage_is_no_limit(self, tmp_path: Path, garbage: str) -> None:
        """Unreadable values never raise; they read as no limit."""
        write(tmp_path, "proc/self/cgroup", "0::/\n")
        write(tmp_path, "proc/self/mountinfo", V2_MOUNT)
        write(tmp_path, "sys/fs/cgroup/cpu.max", garbage)
        write(tmp_path, "sys/fs/cgroup/memory.max", garbage)
        assert limits(tmp_path) == CgroupLimits(None, None)

    def test_missing_tree_is_no_limit(self, tmp_path: Path) -> None:
        """A machine without /proc/self/cgroup (macOS, Windows) reports no limits."""
        assert limits(tmp_path / "absent") == CgroupLimits(None, None)


class TestDetectContainer:
    def test_detect_container(self, tmp_path: Path) -> None:
        """/.dockerenv or a kubepods cgroup mark a container; a bare root does not."""
        assert not detect_container(tmp_path)
        write(tmp_path, "proc/1/cgroup", "0::/kubepods/burstable/pod1\n")
        assert detect_container(tmp_path)
