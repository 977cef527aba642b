"""The sampler: recorded psutil numbers in, exact heartbeat fields out; failures drop fields only.

These readers get an empty tree as their /proc and /sys, so every reading
comes through psutil, as on macOS; the kernel-file readings are replayed from
recorded trees in test_accuracy.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent.heartbeat import HeartbeatBuilder, SlowCache
from agent.procfs import HostPaths
from agent.readings import FastReading, SlowReading
from agent.sampler import PsutilReader
from agent.wire import pack
from shared.codec import decode, encode, encode_json
from shared.messages import Heartbeat

from .fakes import CpuTimes, Disk, FakeClock, FakeProcess, FakePsutil, Mem, Memory, Nic, Swap


def make_reader(
    ps: FakePsutil, clock: FakeClock, tmp_path: Path, *, top: bool = False
) -> tuple[PsutilReader, HeartbeatBuilder]:
    reader = PsutilReader(
        ps, clock=clock, wall_clock=lambda: 2_000.0 + clock.now, host=HostPaths.under(tmp_path), top_processes=top
    )
    return reader, HeartbeatBuilder(boot_time_at=1_000.0)


def build(
    builder: HeartbeatBuilder, seq: int, fast: FastReading, slow: SlowReading | None, late_ticks: int = 0
) -> Heartbeat:
    """Build a heartbeat map and check it is exactly what shared.codec would send for the same model."""
    frame = pack(builder.build(seq, fast, slow, late_ticks))
    model = decode(frame)
    assert isinstance(model, Heartbeat)
    assert encode(model) == frame
    return model


def advance_counters(ps: FakePsutil) -> None:
    ps.total = CpuTimes(user=3, nice=0, system=1, idle=4, iowait=0, guest=0)
    ps.cores = [CpuTimes(3, 0, 1, 0, 0, 0), CpuTimes(0, 0, 0, 4, 0, 0)]
    ps.disks = {"sda": Disk(4096, 8192), "sda1": Disk(4096, 8192)}
    ps.nics = {"lo": Nic(10**9, 10**9), "eth0": Nic(bytes_sent=200, bytes_recv=1000), "wlan0": Nic(0, 0)}


class BigPsutil(FakePsutil):
    """A VM with 16 GiB of memory and 2 GiB of swap: wire integers at the width a real machine needs, no sensors."""

    def sensors_temperatures(self) -> dict[str, list[Any]]:
        return {}

    def virtual_memory(self) -> Any:
        return Memory(total=17_179_869_184, available=11_811_160_064, percent=31.25, used=5_368_709_120)

    def swap_memory(self) -> Any:
        return Swap(total=2_147_483_648, used=104_857_600, percent=4.9)


def write_tree(root: Path, second: int) -> None:
    """A procfs at ``second``: two busy physical interfaces and disks (counters near 10^11), two ext4 mounts, PSI."""
    net = root / "proc" / "net"
    net.mkdir(parents=True, exist_ok=True)
    lines = ["Inter-| header", " face | header"]
    for name in ("eth0", "wlan0"):
        rx, tx = 98_765_432_100 + second * 125_000_254, 12_345_678_900 + second * 62_500_753
        lines.append(f"{name}: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0")
        (root / "sys" / "class" / "net" / name / "device").mkdir(parents=True, exist_ok=True)
    (net / "dev").write_text("\n".join(lines) + "\n")
    (root / "proc" / "self").mkdir(exist_ok=True)
    (root / "proc" / "self" / "mountinfo").write_text(
        "28 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n29 28 252:17 / /home rw,relatime - ext4 /dev/vdb1 rw\n"
    )
    stats = []
    for index, name in enumerate(("vda", "vdb")):
        sectors = 190_000_000 + second * 2048
        stats.append(
            f"254 {index * 16} {name} 9000000 0 {sectors} 4000000 8000000 0 {sectors} 9000000 0 {second * 500} 0"
        )
        (root / "sys" / "block" / name / "device").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "diskstats").write_text("\n".join(stats) + "\n")
    (root / "proc" / "pressure").mkdir(exist_ok=True)
    for resource in ("cpu", "io", "memory"):
        (root / "proc" / "pressure" / resource).write_text(
            "some avg10=12.34 avg60=8.65 avg300=4.08 total=26952732\nfull avg10=1.23 avg60=0.00 avg300=0.00 total=9\n"
        )
    (root / "proc" / "net" / "snmp").write_text("Tcp: CurrEstab InSegs\nTcp: 1234 99999999\n")
    (root / "proc" / "net" / "sockstat").write_text("sockets: used 40\nTCP: inuse 12 orphan 0 tw 747 alloc 12 mem 67\n")
    (root / "proc" / "sys" / "fs").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "sys" / "fs" / "file-nr").write_text("12345\t0\t9223372036854775807\n")


class TestHeartbeatBuilder:
    def test_first_heartbeat_has_no_rates(self, tmp_path: Path) -> None:
        """Without a primed baseline the first heartbeat omits CPU and I/O rates instead of sending 0."""
        ps, clock = FakePsutil(), FakeClock(10.0)
        reader, builder = make_reader(ps, clock, tmp_path)
        beat = build(builder, 1, reader.read_fast(), reader.read_slow())
        assert beat.cpu_percent is None
        assert beat.cpu_per_core_percent is None
        assert beat.net_rx_bytes_per_s is None
        assert beat.disk_read_bytes_per_s is None
        assert beat.mem_percent == 25.0

    def test_exact_numbers_from_recorded_counters(self, tmp_path: Path) -> None:
        """Two readings 2 s apart give exact rates; lo and partitions are left out of the sums."""
        ps, clock = FakePsutil(), FakeClock(10.0)
        reader, builder = make_reader(ps, clock, tmp_path)
        builder.prime(reader.read_fast())
        clock.advance(2.0)
        advance_counters(ps)
        beat = build(builder, 1, reader.read_fast(), reader.read_slow())
        assert beat.cpu_percent == 50.0
        assert beat.cpu_per_core_percent == [100.0, 0.0]
        assert beat.disk_read_bytes_per_s == 2048.0
        assert beat.disk_write_bytes_per_s == 4096.0
        assert beat.net_rx_bytes_per_s == 500.0
        assert beat.net_tx_bytes_per_s == 100.0
        assert beat.net_interfaces == {"eth0": [500.0, 100.0], "wlan0": [0.0, 0.0]}
        assert beat.load_avg == [0.5, 0.25, 0.12]
        assert beat.disks == {"/": [100, 40, 60], "/data": [100, 40, 60]}
        assert beat.temperatures == {"coretemp/Core 0": 41.0, "coretemp/1": 42.0}
        assert beat.process_count == 3
        assert beat.uptime_s == 1012.0
        assert beat.sampled_at == 2012.0
        assert beat.swap_used_bytes == 100
        assert beat.sample_errors is None
        assert beat.late_ticks is None

    def test_failing_call_drops_its_field_and_counts(self, tmp_path: Path) -> None:
        """A raising psutil call removes only its field; sample_errors counts every failure so far."""
        ps, clock = FakePsutil(fail={"virtual_memory", "sensors_temperatures"}), FakeClock()
        reader, builder = make_reader(ps, clock, tmp_path)
        first = build(builder, 1, reader.read_fast(), reader.read_slow())
        assert first.mem_percent is None
        assert first.mem_used_bytes is None
        assert first.temperatures is None
        assert first.swap_percent == 10.0
        assert first.sample_errors == 2
        second = build(builder, 2, reader.read_fast(), reader.read_slow())
        assert second.sample_errors == 4

    def test_slow_reading_missing_counts_one_error(self, tmp_path: Path) -> None:
        """A slow reading that did not finish in time leaves disks, processes and details out and counts once."""
        ps, clock = FakePsutil(), FakeClock()
        reader, builder = make_reader(ps, clock, tmp_path)
        beat = build(builder, 1, reader.read_fast(), None, late_ticks=3)
        assert beat.disks is None
        assert beat.process_count is None
        assert beat.cpu_mode_percent is None
        assert beat.sample_errors == 1
        assert beat.late_ticks == 3

    def test_disk_io_none_gives_no_disk_rates(self, tmp_path: Path) -> None:
        """disk_io_counters() returning None (no disks) is not an error, just no disk rates."""
        ps, clock = FakePsutil(disks=None), FakeClock()
        reader, builder = make_reader(ps, clock, tmp_path)
        builder.prime(reader.read_fast())
        clock.advance(1.0)
        beat = build(builder, 1, reader.read_fast(), SlowReading())
        assert beat.disk_read_bytes_per_s is None
        assert beat.sample_errors is None

    def test_cgroup_limits_of_own_cgroup(self, tmp_path: Path) -> None:
        """cgroup v2 limits of the agent's own cgroup in the injected tree appear in the heartbeat."""
        (tmp_path / "proc/self").mkdir(parents=True)
        (tmp_path / "proc/self/cgroup").write_text("0::/agent.service\n")
        (tmp_path / "proc/self/mountinfo").write_text("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
        (tmp_path / "sys/fs/cgroup/agent.service").mkdir(parents=True)
        (tmp_path / "sys/fs/cgroup/agent.service/cpu.max").write_text("200000 100000")
        (tmp_path / "sys/fs/cgroup/agent.service/memory.max").write_text("1048576")
        ps, clock = FakePsutil(), FakeClock()
        reader, builder = make_reader(ps, clock, tmp_path)
        beat = build(builder, 1, reader.read_fast(), reader.read_slow())
        assert beat.cgroup_cpu_limit_cores == 2.0
        assert beat.cgroup_memory_limit_bytes == 1048576

    def test_no_cgroup_root_reads_no_limits(self, tmp_path: Path) -> None:
        """cgroup_root=None turns the cgroup reading off even where the tree has limits."""
        (tmp_path / "proc/self").mkdir(parents=True)
        (tmp_path / "proc/self/cgroup").write_text("0::/\n")
        (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
        (tmp_path / "sys/fs/cgroup/memory.max").write_text("1048576")
        reader = PsutilReader(FakePsutil(), clock=FakeClock(), wall_clock=FakeClock(), host=HostPaths.under(tmp_path),
                              cgroup_root=None)  # fmt: skip
        assert reader.read_slow().cgroup is None

    def test_top_processes_behind_flag(self, tmp_path: Path) -> None:
        """With the flag the top 5 by CPU and by RSS are sent, sorted; without it nothing is."""
        procs = [
            FakeProcess(pid, {"name": f"p{pid}", "cpu_percent": float(pid), "memory_info": Mem(rss=1000 - pid)})
            for pid in range(1, 8)
        ]
        ps, clock = FakePsutil(processes=procs), FakeClock()
        reader, builder = make_reader(ps, clock, tmp_path, top=True)
        beat = build(builder, 1, reader.read_fast(), reader.read_slow())
        assert beat.top_cpu is not None
        assert beat.top_memory is not None
        assert [p.pid for p in beat.top_cpu] == [7, 6, 5, 4, 3]
        assert [p.pid for p in beat.top_memory] == [1, 2, 3, 4, 5]
        plain_reader, plain_builder = make_reader(ps, clock, tmp_path)
        assert build(plain_builder, 1, plain_reader.read_fast(), plain_reader.read_slow()).top_cpu is None


class TestHeartbeatSize:
    """The 1 Hz heartbeat fits its 600 bytes; the one with the slow-tier details every 5 s may be larger."""

    def test_core_and_detailed_heartbeats(self, tmp_path: Path) -> None:
        """A 2-core, 2-terabyte-mount, 2-disk, 2-interface node: 600 bytes at most between details, 1200 with them."""
        ps, clock = BigPsutil(), FakeClock()
        write_tree(tmp_path, 0)
        tib = 2**40 // 4096
        usage = os.statvfs_result((4096, 4096, tib, tib // 2, tib // 2 - tib // 20, 2**26, 2**25, 2**25, 0, 255))
        reader = PsutilReader(ps, clock=clock, wall_clock=lambda: 1_700_000_000.123 + clock.now,
                              host=HostPaths.under(tmp_path), statvfs=lambda path: usage)  # fmt: skip
        builder = HeartbeatBuilder(boot_time_at=1_690_000_000.0)
        cache = SlowCache(refresh_s=5.0, max_age_s=15.0)
        builder.prime(reader.read_fast())
        frames = []
        for second in range(1, 7):
            clock.advance(1.0)
            write_tree(tmp_path, second)
            ps.total = CpuTimes(123456.78 + second, 12.5, 23456.7, 987654.3 + second, 1234.5, 0)
            ps.cores = [CpuTimes(61728.39 + second, 6.2, 11728.3, 493827.1 + second, 617.2, 0)] * 2
            slow = cache.store(reader.read_slow(), clock.now) if second in {1, 6} else cache.reuse(clock.now)
            beat = build(builder, 123455 + second, reader.read_fast(), slow, late_ticks=3)
            assert len(encode(beat)) < len(encode_json(beat))
            frames.append((beat, len(encode(beat))))
        core, detailed = frames[1], frames[-1]
        assert core[0].disk_devices is None
        assert core[1] <= 600, f"heartbeat is {core[1]} bytes"
        assert detailed[0].disk_devices is not None
        assert detailed[0].pressure_avg10_percent is not None
        # Every fifth heartbeat: with 584 between, a node averages under 700 bytes a second.
        assert detailed[1] <= 1200, f"heartbeat with details is {detailed[1]} bytes"


class TestSlowCache:
    def test_refresh_schedule_and_reuse(self) -> None:
        """A slow reading is due every refresh_s; in between it is reused, no errors recounted, details not resent."""
        cache = SlowCache(refresh_s=5.0, max_age_s=15.0)
        assert cache.due(0.0)
        assert cache.reuse(0.0) is None
        cache.started(0.0)
        fresh = cache.store(SlowReading(process_count=7, errors=2), 0.1)
        assert fresh.errors == 2
        assert not cache.due(4.9)
        assert cache.reuse(4.9) == SlowReading(process_count=7, errors=0, fresh=False)
        assert cache.due(5.0)

    def test_too_old_reading_is_dropped(self) -> None:
        """When refreshes stop finishing, the last reading is shown for max_age_s and then not at all."""
        cache = SlowCache(refresh_s=5.0, max_age_s=15.0)
        cache.started(0.0)
        cache.store(SlowReading(process_count=7), 0.0)
        assert cache.reuse(15.0) is not None
        assert cache.reuse(15.1) is None
