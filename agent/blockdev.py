"""Block device counters from ``/proc/diskstats``, and which devices the machine's disk totals count.

The totals count whole physical disks only. ``/proc/diskstats`` lists every
layer of a stack: a partition and its disk, a loop device and the disk
holding its file, dm-crypt/LVM (``dm-*``) and md RAID over their members,
zram and ram disks in memory. Summing them counted 200 MB written through a
loop device as 431 MB (issue 14). A device is counted when ``/sys/block``
lists it (partitions live under their disk), a device is behind it
(``/sys/block/NAME/device``), it holds no other devices (``slaves/`` is
empty) and its name is not one of the virtual kinds. Without a sysfs the
names alone decide.

Not here: rates (``agent.rates``), or the non-Linux fallback through psutil
(``agent.sampler``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from agent.procfs import HostPaths, read_text

# /proc/diskstats counts in 512-byte sectors whatever the device's own sector size
# (Documentation/admin-guide/iostats.rst).
SECTOR_BYTES = 512
# Kernel names of devices that sit on top of other devices or in memory.
VIRTUAL_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "nbd", "zd")


class DiskStats(NamedTuple):
    """One device's cumulative I/O since boot (Documentation/admin-guide/iostats.rst, fields 1-10)."""

    reads: int
    read_bytes: int
    read_ms: int
    writes: int
    write_bytes: int
    write_ms: int
    busy_ms: int  # time with I/O in flight: its rate is the utilisation iostat shows as %util


def parse_diskstats(text: str) -> dict[str, DiskStats]:
    """Parse ``/proc/diskstats``: ``major minor name``, then the counters of iostats.rst in order."""
    stats: dict[str, DiskStats] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 14:
            continue
        try:
            values = [int(field) for field in fields[3:14]]
        except ValueError:
            continue
        reads, _, read_sectors, read_ms, writes, _, write_sectors, write_ms, _, busy_ms, _ = values
        stats[fields[2]] = DiskStats(
            reads, read_sectors * SECTOR_BYTES, read_ms, writes, write_sectors * SECTOR_BYTES, write_ms, busy_ms
        )
    return stats


def read_diskstats(host: HostPaths) -> dict[str, DiskStats] | None:
    """Every block device's counters, or None where there is no ``/proc/diskstats``."""
    text = read_text(host.proc / "diskstats")
    return None if text is None else parse_diskstats(text)


def partition_names(names: Iterable[str]) -> set[str]:
    """Return the names that are partitions of another listed disk (sda1 of sda, nvme0n1p2 of nvme0n1)."""
    listed = set(names)
    partitions = set()
    for name in listed:
        stem = name.rstrip("0123456789")
        if stem == name:
            continue
        parent = stem[:-1] if stem.endswith("p") and stem[:-1] in listed else stem
        if parent in listed and parent != name:
            partitions.add(name)
    return partitions


def _holds_others(entry: Path) -> bool:
    try:
        return any((entry / "slaves").iterdir())
    except OSError:  # no slaves/ directory: a plain disk
        return False


def counted_disks(names: Iterable[str], sys_root: Path) -> frozenset[str]:
    """The devices the machine's disk read/write totals sum: whole physical disks."""
    listed = [name for name in names if not name.startswith(VIRTUAL_PREFIXES)]
    block = sys_root / "block"
    if not block.is_dir():
        partitions = partition_names(listed)
        return frozenset(name for name in listed if name not in partitions)
    counted = set()
    for name in listed:
        entry = block / name.replace("/", "!")  # cciss/c0d0 is /sys/block/cciss!c0d0
        if entry.is_dir() and (entry / "device").exists() and not _holds_others(entry):
            counted.add(name)
    return frozenset(counted)
