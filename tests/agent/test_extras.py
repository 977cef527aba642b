"""The slow-tier details: exact figures from recorded trees, sent once per fresh slow reading."""

from __future__ import annotations

from pathlib import Path

from agent.blockdev import DiskStats
from agent.extras import cpu_mode_percent, disk_device_rates
from agent.heartbeat import HeartbeatBuilder, SlowCache
from agent.procfs import HostPaths
from agent.sampler import PsutilReader
from agent.wire import pack
from shared.codec import decode
from shared.messages import Heartbeat

from .fakes import CpuTimes, FakeClock, FakePsutil

TREES = Path(__file__).parent / "trees"


def details_after_10_s(tree: Path) -> tuple[Heartbeat, Heartbeat]:
    """Heartbeats at 10 s (fresh, on ``proc``) and 20 s (fresh, on ``proc.10s``); the second has rates."""
    clock, ps = FakeClock(100.0), FakePsutil()
    builder = HeartbeatBuilder()
    beats = []
    for seq, proc in enumerate(("proc", "proc.10s"), start=1):
        reader = PsutilReader(ps, clock=clock, wall_clock=clock, host=HostPaths(tree / proc, tree / "sys", tree))
        if seq == 1:
            builder.prime(reader.read_fast())
        clock.advance(10.0)
        ps.cores = [CpuTimes(user=10 * seq, nice=0, system=5 * seq, idle=20 * seq, iowait=5 * seq, guest=3 * seq)]
        beat = decode(pack(builder.build(seq, reader.read_fast(), reader.read_slow())))
        assert isinstance(beat, Heartbeat)
        beats.append(beat)
    return beats[0], beats[1]


class TestDetails:
    def test_per_disk_io_like_iostat(self) -> None:
        """Whole physical disks get bytes/s, IOPS, busy percent and await over the 10 s; stacked devices none."""
        first, second = details_after_10_s(TREES / "stacked")
        assert first.disk_devices is None
        assert second.disk_devices is not None
        assert set(second.disk_devices) == {"vda", "sdb", "sdc", "nvme0n1"}
        # vda: 441,000 sectors and 55,125 writes in 10 s, 2,756 ms busy, 5,512 ms writing
        assert second.disk_devices["vda"] == [0.0, 22_579_200.0, 0.0, 5_512.5, 27.6, 0.1]

    def test_interface_errors_and_links(self) -> None:
        """Each listed interface carries its cumulative errors and drops; loopback none; no link is down."""
        _, second = details_after_10_s(TREES / "bridge")
        assert second.net_interface_errors is not None
        assert second.net_interface_errors["eth0"] == [5, 150, 0, 0]
        assert set(second.net_interface_errors) == {"eth0", "docker0", "veth1a2b3c", "ifb0", "tun0"}
        assert second.net_interfaces_down == []

    def test_cpu_modes_over_the_slow_period(self) -> None:
        """CPU modes are shares of all time since the last details, guest left out as it is inside user."""
        first, second = details_after_10_s(TREES / "bridge")
        assert first.cpu_mode_percent == {"user": 25.0, "nice": 0.0, "system": 12.5, "iowait": 12.5}
        assert second.cpu_mode_percent == first.cpu_mode_percent

    def test_repeated_slow_reading_sends_no_details(self) -> None:
        """Between fresh slow readings the heartbeat repeats disks but not the details."""
        tree = TREES / "bridge"
        clock, cache, builder = FakeClock(), SlowCache(5.0, 15.0), HeartbeatBuilder()
        reader = PsutilReader(FakePsutil(), clock=clock, wall_clock=clock, host=HostPaths.under(tree))
        fresh = builder.build(1, reader.read_fast(), cache.store(reader.read_slow(), 0.0))
        repeated = builder.build(2, reader.read_fast(), cache.reuse(1.0))
        assert "net_interface_errors" in fresh
        assert "net_interface_errors" not in repeated
        assert "net_interfaces_down" not in repeated


class TestRates:
    def test_no_time_or_a_reset_gives_no_figures(self) -> None:
        """A zero interval or a counter that went down (device re-created) gives no rates, not huge ones."""
        stats = DiskStats(10, 4096, 5, 10, 4096, 5, 100)
        assert disk_device_rates(stats, stats, 0.0) is None
        assert disk_device_rates(stats, stats._replace(reads=9), 1.0) is None
        assert disk_device_rates(stats, stats, 1.0) == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        assert cpu_mode_percent({"user": 1.0}, {"user": 1.0}) is None
