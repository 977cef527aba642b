"""Issue 14's four accuracy defects, each replayed from a recorded /proc and /sys tree into a heartbeat.

The trees are under tests/agent/trees (see its README.md). A tree's ``proc``
is the first reading and ``proc.10s`` the one ten seconds later, so every
rate below is an exact delta / 10 s.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from agent.heartbeat import HeartbeatBuilder
from agent.procfs import HostPaths
from agent.sampler import PsutilReader
from agent.wire import pack
from shared.codec import decode, encode
from shared.messages import Heartbeat

from .fakes import FakeClock, FakePsutil

TREES = Path(__file__).parent / "trees"
INTERVAL_S = 10.0


Recorded = dict[str, os.statvfs_result]


def reader_at(tree: Path, proc: str, clock: FakeClock, statvfs: Recorded | None = None) -> PsutilReader:
    """A reader of ``tree`` whose procfs is ``tree/proc``; statvfs answers from a recording keyed by mount."""
    recorded = statvfs or {}

    def fake_statvfs(path: str) -> os.statvfs_result:
        relative = Path(path).relative_to(tree).as_posix()
        return recorded["/" if relative == "." else "/" + relative]

    host = HostPaths(proc=tree / proc, sys=tree / "sys", rootfs=tree)
    return PsutilReader(FakePsutil(), clock=clock, wall_clock=lambda: 1_700_000_000.0 + clock.now, host=host,
                        statvfs=fake_statvfs)  # fmt: skip


def replay(tree: Path, statvfs: Recorded | None = None) -> Heartbeat:
    """Prime on ``proc``, read ``proc.10s`` ten seconds later, and decode the heartbeat as the collector would."""
    clock = FakeClock(100.0)
    builder = HeartbeatBuilder()
    builder.prime(reader_at(tree, "proc", clock).read_fast())
    clock.advance(INTERVAL_S)
    later = reader_at(tree, "proc.10s" if (tree / "proc.10s").is_dir() else "proc", clock, statvfs)
    frame = pack(builder.build(1, later.read_fast(), later.read_slow()))
    beat = decode(frame)
    assert isinstance(beat, Heartbeat)
    assert encode(beat) == frame
    return beat


def df_use_percent(used: int, available: int) -> int:
    """coreutils df's Use%: used / (used + available), rounded up to a whole percent."""
    return math.ceil(used * 100 / (used + available))


class TestDiskFullness:
    """Defect 1: disks carried [total, used], and used/total hides the root reserve."""

    def recorded(self) -> Recorded:
        raw = json.loads((TREES / "df" / "statvfs.json").read_text())
        fields = ("f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
        return {
            mount: os.statvfs_result((v["f_frsize"], *(v[name] for name in fields), v["f_ffree"], 0, 255))
            for mount, v in raw.items()
        }

    def test_available_bytes_are_sent_per_mount(self) -> None:
        """Each mount carries [total, used, available] bytes as df computes them; no pseudo or network mount."""
        beat = replay(TREES / "df", self.recorded())
        assert beat.disks == {
            "/": [107_374_182_400, 102_005_473_280, 0],
            "/boot/efi": [111_665_152, 9_265_152, 102_400_000],
            "/mnt/backup disk": [8_192_000_000, 2_048_000_000, 5_734_400_000],
            "/srv/archive": [4_096_000_000, 1_638_400_000, 2_457_600_000],
        }

    def test_fullness_from_the_wire_matches_df(self) -> None:
        """used / (used + available) from the wire is df's Use% within a point: the 95 %-of-blocks root disk is full."""
        beat = replay(TREES / "df", self.recorded())
        assert beat.disks is not None
        df_shows = {"/": 100, "/boot/efi": 9, "/mnt/backup disk": 27, "/srv/archive": 40}
        for mount, (_, used, available) in beat.disks.items():
            fullness = used / (used + available) * 100
            assert abs(fullness - df_shows[mount]) <= 1, mount
            assert df_use_percent(used, available) == df_shows[mount]

    def test_inodes_and_read_only_mounts(self) -> None:
        """Inodes as df -i counts them (none for vfat) and the mount mounted ro come with the details."""
        beat = replay(TREES / "df", self.recorded())
        assert beat.disk_inodes == {
            "/": [6_553_600, 5_000_000],
            "/mnt/backup disk": [131_072, 131_000],
            "/srv/archive": [512_000, 511_000],
        }
        assert beat.disks_read_only == ["/srv/archive"]


class TestNetworkTotals:
    """Defect 2: a bridge, its veth, ifb and tun counted the same bytes again."""

    def test_totals_count_physical_interfaces_only(self) -> None:
        """A container's 5.25 MB/s upload via docker0 counts once, on eth0; every interface keeps its own figures."""
        beat = replay(TREES / "bridge")
        assert beat.net_rx_bytes_per_s == 100_000.0
        assert beat.net_tx_bytes_per_s == 5_251_000.0
        assert beat.net_interfaces == {
            "eth0": [100_000.0, 5_251_000.0],
            "docker0": [5_250_000.0, 99_000.0],
            "veth1a2b3c": [5_250_000.0, 99_000.0],
            "ifb0": [100_000.0, 100_000.0],
            "tun0": [1_000.0, 1_000.0],
        }

    def test_container_without_physical_interfaces_still_has_totals(self) -> None:
        """Inside a container eth0 is a veth with no device behind it; the totals count it rather than nothing."""
        beat = replay(TREES / "container")
        assert (beat.net_rx_bytes_per_s, beat.net_tx_bytes_per_s) == (100_000.0, 200_000.0)
        assert beat.net_interfaces == {"eth0": [100_000.0, 200_000.0]}


class TestDiskIoTotals:
    """Defect 3: loop, dm, md and zram were counted on top of the disks they sit on."""

    def test_totals_count_whole_physical_disks_only(self) -> None:
        """200 MB written via loop0, plus dm-crypt, RAID1 and zram traffic, count once on vda, sdb, sdc and nvme0n1."""
        beat = replay(TREES / "stacked")
        # (vda 441,000 + sdb 100,000 + sdc 100,000 + nvme0n1 50,000 sectors) x 512 bytes / 10 s
        assert beat.disk_write_bytes_per_s == 35_379_200.0
        assert beat.disk_read_bytes_per_s == 1_024_000.0


class TestOwnCgroup:
    """Defect 4: limits were read at the cgroup mount's root, not at the agent's own cgroup."""

    @pytest.mark.parametrize("tree", ["cgroup_v2", "cgroup_v1"])
    def test_limits_of_the_agents_cgroup_and_its_parents(self, tree: str) -> None:
        """An agent in a 1 GiB, 0.5-core pod or container reports those limits, not its sibling's or none."""
        beat = replay(TREES / tree)
        assert beat.cgroup_cpu_limit_cores == 0.5
        assert beat.cgroup_memory_limit_bytes == 1_073_741_824
