"""Accuracy of the agent's readings next to node_exporter and df, read at the same instants.

Runs ``prometheus-node-exporter`` (Debian package) on 127.0.0.1 with only the
collectors compared here. At t0 and t0 + ``--interval`` it reads the agent's
``PsutilReader`` (this machine's /proc and /sys, through the agent's own
code) and scrapes node_exporter right after, so both see the same counters
within milliseconds. Gauges are compared at t1; rates over [t0, t1], each
tool over its own counters. Disk fullness is compared with ``df -P``'s
Use% too. Prints one markdown table: metric, nodewatch, node_exporter (or
df), difference.

Run as root, it installs prometheus-node-exporter with apt-get if it is
missing, and says so first; otherwise install it yourself. It is a
measurement script, not a test, and takes about ``--interval`` seconds.

    .venv/bin/python bench/accuracy.py --interval 5
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.blockdev import counted_disks, read_diskstats
from agent.heartbeat import HeartbeatBuilder
from agent.netdev import counted_interfaces, read_net_dev
from agent.procfs import HostPaths
from agent.sampler import PsutilReader
from agent.wire import WireDict

PACKAGE = "prometheus-node-exporter"
# Only what is compared: fewer collectors make the scrape (and its skew against the agent) short.
COLLECTORS = ("cpu", "diskstats", "filefd", "filesystem", "loadavg", "meminfo", "netdev", "netstat", "pressure",
              "sockstat", "stat", "time")  # fmt: skip
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def find_node_exporter() -> str:
    """The binary's path, installing the Debian package first when root and it is missing."""
    for name in (PACKAGE, "node_exporter"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0:
        sys.exit(f"{PACKAGE} is not installed: run `apt-get install {PACKAGE}` as root, then this again")
    print(f"{PACKAGE} is missing; installing it with apt-get (running as root)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "--no-install-recommends"]
    subprocess.run([*apt, "install", PACKAGE], check=True, env=env)
    found = shutil.which(PACKAGE)
    if not found:
        sys.exit(f"apt-get installed {PACKAGE} but it is not on PATH")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(url: str) -> Samples:
    """Parse the text exposition format into (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        labels = frozenset(_LABEL.findall(match.group(3) or ""))
        samples[match.group(1), labels] = float(match.group(4))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, label: str, keep: set[str] | None = None, **fixed: str) -> float:
    """Sum of a family over ``label`` values in ``keep`` (all when None), other labels fixed."""
    result = 0.0
    for (family, labels), number in samples.items():
        found = dict(labels)
        if family != name or any(found.get(k) != v for k, v in fixed.items()):
            continue
        if keep is None or found.get(label) in keep:
            result += number
    return result


def df_use_percent(mount: str) -> int | None:
    """df -P's Capacity column for ``mount`` (coreutils: used / (used + available), rounded up)."""
    out = subprocess.run(["df", "-P", "-B1", mount], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) < 2:
        return None
    return int(lines[1].split()[4].rstrip("%"))


class Table:
    """Rows of metric, nodewatch, the reference and their difference."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, metric: str, ours: float | None, theirs: float | None, unit: str = "", digits: int = 1) -> None:
        def show(number: float | None) -> str:
            return "-" if number is None else f"{number:,.{digits}f}{unit}"

        diff = "-" if ours is None or theirs is None else f"{ours - theirs:+,.{digits}f}{unit}"
        self.rows.append((metric, show(ours), show(theirs), diff))

    def print(self) -> None:
        print("| metric | nodewatch | node_exporter / df | difference |")
        print("|---|---:|---:|---:|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def cpu_rates(before: Samples, after: Samples) -> dict[str, float]:
    """Percent of all CPU time per mode over the interval, from node_cpu_seconds_total."""
    modes: dict[str, float] = {}
    for (family, labels), number in after.items():
        if family == "node_cpu_seconds_total":
            mode = dict(labels)["mode"]
            modes[mode] = modes.get(mode, 0.0) + number - before.get((family, labels), number)
    all_time = sum(modes.values())
    return {mode: delta / all_time * 100 for mode, delta in modes.items()} if all_time > 0 else {}


def compare(beat: WireDict, counted: dict[str, set[str]], ne: tuple[Samples, Samples], dt: float) -> Table:
    """The table for one heartbeat against two scrapes ``dt`` seconds apart."""
    before, after = ne
    table = Table()
    modes = cpu_rates(before, after)
    if modes:
        table.add("cpu busy %", beat.get("cpu_percent"), 100 - modes.get("idle", 0) - modes.get("iowait", 0), " %")
        for mode in ("user", "system", "iowait", "steal"):
            table.add(f"cpu {mode} %", beat.get("cpu_mode_percent", {}).get(mode), modes.get(mode), " %")
    table.add("load 1 min", (beat.get("load_avg") or [None])[0], value(after, "node_load1"), digits=2)
    mem_total = value(after, "node_memory_MemTotal_bytes") or 0.0
    mem_avail = value(after, "node_memory_MemAvailable_bytes")
    mib = 2**20
    ours_used = beat.get("mem_used_bytes")
    table.add("memory used MiB", ours_used / mib if ours_used is not None else None,
              (mem_total - mem_avail) / mib if mem_avail is not None else None)  # fmt: skip
    ours_avail = beat.get("mem_available_bytes")
    table.add("memory available MiB", ours_avail / mib if ours_avail is not None else None,
              mem_avail / mib if mem_avail is not None else None)  # fmt: skip
    swap_total, swap_free = value(after, "node_memory_SwapTotal_bytes"), value(after, "node_memory_SwapFree_bytes")
    ours_swap = beat.get("swap_used_bytes")
    table.add("swap used MiB", ours_swap / mib if ours_swap is not None else None,
              (swap_total - swap_free) / mib if swap_total is not None and swap_free is not None else None)  # fmt: skip
    rate_rows = (
        ("net rx bytes/s (physical)", "net_rx_bytes_per_s", "node_network_receive_bytes_total", "device", "net"),
        ("net tx bytes/s (physical)", "net_tx_bytes_per_s", "node_network_transmit_bytes_total", "device", "net"),
        ("disk read bytes/s (whole disks)", "disk_read_bytes_per_s", "node_disk_read_bytes_total", "device", "disk"),
        ("disk write bytes/s (whole disks)", "disk_write_bytes_per_s", "node_disk_written_bytes_total", "device",
         "disk"),
    )  # fmt: skip
    for metric, field, family, label, kind in rate_rows:
        delta = total(after, family, label, counted[kind]) - total(before, family, label, counted[kind])
        table.add(metric, beat.get(field), delta / dt)
    for name, rates in (beat.get("disk_devices") or {}).items():
        busy = value(after, "node_disk_io_time_seconds_total", device=name)
        busy0 = value(before, "node_disk_io_time_seconds_total", device=name)
        if busy is not None and busy0 is not None:
            table.add(f"disk {name} busy %", rates[4], (busy - busy0) / dt * 100, " %")
    for mount, numbers in (beat.get("disks") or {}).items():
        size = value(after, "node_filesystem_size_bytes", mountpoint=mount, **_fs_labels(after, mount))
        avail = value(after, "node_filesystem_avail_bytes", mountpoint=mount, **_fs_labels(after, mount))
        gib = 2**30
        table.add(f"{mount} size GiB", numbers[0] / gib, size / gib if size is not None else None, digits=3)
        table.add(f"{mount} available GiB", numbers[2] / gib, avail / gib if avail is not None else None, digits=3)
        room = numbers[1] + numbers[2]
        fullness = numbers[1] / room * 100 if room else None
        table.add(f"{mount} fullness % vs df Use%", fullness, df_use_percent(mount), " %")
        inodes = (beat.get("disk_inodes") or {}).get(mount)
        files_free = value(after, "node_filesystem_files_free", mountpoint=mount, **_fs_labels(after, mount))
        table.add(f"{mount} inodes free", inodes[1] if inodes else None, files_free, digits=0)
    for metric, field, family in (
        ("tcp established", "tcp_established", "node_netstat_Tcp_CurrEstab"),
        ("tcp time-wait", "tcp_time_wait", "node_sockstat_TCP_tw"),
        ("file handles allocated", "fd_allocated", "node_filefd_allocated"),
    ):
        table.add(metric, beat.get(field), value(after, family), digits=0)
    boot = value(after, "node_boot_time_seconds")
    now = value(after, "node_time_seconds")
    table.add("uptime s", beat.get("uptime_s"), now - boot if boot is not None and now is not None else None)
    return table


def _fs_labels(samples: Samples, mount: str) -> dict[str, str]:
    """node_filesystem_* also carry device and fstype; take them from the size series of ``mount``."""
    for family, labels in samples:
        found = dict(labels)
        if family == "node_filesystem_size_bytes" and found.get("mountpoint") == mount:
            return {k: v for k, v in found.items() if k != "mountpoint"}
    return {}


def run(interval_s: float, binary: str) -> int:
    """Start node_exporter, take the two instants, print the table."""
    psutil = importlib.import_module("psutil")  # as agent.runner: spares a dependency on types-psutil
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults"]
    argv += [f"--collector.{name}" for name in COLLECTORS]
    exporter = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                scrape(url)
                break
            except OSError:
                time.sleep(0.1)
        reader = PsutilReader(psutil, clock=time.monotonic, wall_clock=time.time)
        builder = HeartbeatBuilder(boot_time_at=float(psutil.boot_time()))
        fast0 = reader.read_fast()
        ne0 = scrape(url)
        builder.build(1, fast0, reader.read_slow())  # baselines, the slow tier's too
        time.sleep(interval_s)
        fast1 = reader.read_fast()
        ne1 = scrape(url)
        beat = builder.build(2, fast1, reader.read_slow())
        host = HostPaths()
        counted = {
            "net": set(counted_interfaces(read_net_dev(host) or {}, host.sys)),
            "disk": set(counted_disks(read_diskstats(host) or {}, host.sys)),
        }
        print(f"nodewatch agent vs {Path(binary).name} {_version(binary)} and df, {interval_s:g} s apart; "
              f"physical interfaces {sorted(counted['net'])}, whole disks {sorted(counted['disk'])}\n")  # fmt: skip
        compare(beat, counted, (ne0, ne1), fast1.monotonic_s - fast0.monotonic_s).print()
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    return 0


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between the two instants (default 5)")
    args = parser.parse_args(argv)
    if not 1.0 <= args.interval <= 600.0:  # NaN fails this too
        parser.error(f"--interval: expected 1-600 seconds, got {args.interval!r}")
    if not sys.platform.startswith("linux"):
        parser.error("expected Linux: node_exporter and the agent's kernel readers read /proc and /sys")
    return run(args.interval, find_node_exporter())


if __name__ == "__main__":
    raise SystemExit(main())
