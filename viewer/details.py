"""Pure: what the detail tabs say about one node: disks as ``df`` shows, cores, interfaces, sensors, GPUs, processes.

The slow-tier fields (docs/protocol.md 5.2, ‡) come only in the heartbeat that carries a
fresh slow reading, about every 5 s; the heartbeats between leave them out. ``SlowDetails``
keeps the last value of each with the ``sampled_at`` of the heartbeat that carried it, and
calls a value gone once three slow periods passed without it, as the protocol says.

Every function returns rows of strings for a table; many hold peer text (mount points,
interface, sensor and process names): the caller shows them as plain text.
Not here: Qt, or which tab is shown (``viewer.detailtabs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from shared.messages import Heartbeat
from viewer.format import disk_fullness, format_bytes, format_clock, format_percent, format_rate

# The fields the agent sends only with a fresh slow reading (docs/protocol.md 5.2, ‡).
SLOW_FIELDS: Final = (
    "disk_inodes",
    "disks_read_only",
    "cpu_mode_percent",
    "pressure_avg10_percent",
    "disk_devices",
    "net_interface_errors",
    "net_interfaces_down",
    "tcp_established",
    "tcp_time_wait",
    "fd_allocated",
    "fd_max",
    "gpus",
)
# The agent's slow reading period (or the interval, if longer), and how many may pass before a value is gone.
SLOW_PERIOD_S: Final = 5.0
GONE_PERIODS: Final = 3
Rows = list[list[str]]


class SlowDetails:
    """The last heartbeat that carried each slow-tier field, so a 1 Hz row keeps its 5 s details."""

    __slots__ = ("_carrier",)

    def __init__(self) -> None:
        self._carrier: dict[str, Heartbeat] = {}

    def absorb(self, sample: Heartbeat) -> None:
        """Keep the slow fields ``sample`` carries (an older sample never replaces a newer one)."""
        for name in SLOW_FIELDS:
            if getattr(sample, name) is not None:
                kept = self._carrier.get(name)
                if kept is None or kept.sampled_at <= sample.sampled_at:
                    self._carrier[name] = sample

    def carrier(self, name: str, latest_at: float, interval_s: float) -> Heartbeat | None:
        """The heartbeat holding ``name``'s last value, or None if none came or it is gone.

        ``latest_at`` is the ``sampled_at`` of the node's newest heartbeat: gone means not sent for
        ``GONE_PERIODS`` slow periods before it (15 s at 1 Hz).
        """
        kept = self._carrier.get(name)
        if kept is None:
            return None
        if latest_at - kept.sampled_at > GONE_PERIODS * max(SLOW_PERIOD_S, interval_s):
            return None
        return kept

    def __bool__(self) -> bool:
        """True once any slow field came."""
        return bool(self._carrier)


_SLOW_FIELD_SET: Final = frozenset(SLOW_FIELDS)


def carries_details(sample: Heartbeat) -> bool:
    """True if ``sample`` was sent with any slow-tier field (the model asks this of every heartbeat).

    One set test on the fields the peer sent, not twelve attribute reads: 2,000 nodes at 1 Hz.
    """
    return not _SLOW_FIELD_SET.isdisjoint(sample.model_fields_set)


def as_of(sample: Heartbeat | None, what: str = "") -> str:
    """'inodes as of HH:MM:SS' for the heartbeat a value came with ('' for none)."""
    if sample is None:
        return ""
    return f"{what} as of {format_clock(sample.sampled_at)}".lstrip()


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _share(part: float, whole: float) -> str:
    return "" if whole <= 0 else format_percent(100.0 * part / whole)


DISK_HEADERS: Final = ("Mount", "Size", "Used", "Avail", "Use%", "Inodes used", "IUse%", "Mode")


def disk_rows(sample: Heartbeat, inodes: Heartbeat | None, read_only: Heartbeat | None) -> Rows:
    """One row per mount, like ``df -h`` plus ``df -i``: Use% is used / (used + available), fullest first.

    ``inodes`` and ``read_only`` are the heartbeats that last carried those slow fields (or None).
    """
    inode_map = {} if inodes is None or inodes.disk_inodes is None else inodes.disk_inodes
    ro_mounts = None if read_only is None or read_only.disks_read_only is None else set(read_only.disks_read_only)
    rows: list[tuple[float, list[str]]] = []
    for mount, values in (sample.disks or {}).items():
        fullness = disk_fullness(values)
        available = values[2] if len(values) >= 3 else None  # an older agent sends [total, used]
        inode = inode_map.get(mount)
        inode_used = None if inode is None else max(0, inode[0] - inode[1])
        mode = "" if ro_mounts is None else ("read-only" if mount in ro_mounts else "rw")
        row = [
            mount,
            format_bytes(values[0]),
            format_bytes(values[1]),
            format_bytes(available),
            format_percent(None if fullness is None else 100.0 * fullness),
            _count(inode_used),
            "" if inode is None or inode_used is None else _share(inode_used, inode[0]),
            mode,
        ]
        rows.append((-1.0 if fullness is None else fullness, row))
    rows.sort(key=lambda pair: (-pair[0], pair[1][0]))
    return [row for _fullness, row in rows]


DEVICE_HEADERS: Final = ("Device", "Read", "Write", "Reads/s", "Writes/s", "Busy", "Await")


def device_rows(devices: Heartbeat | None) -> Rows:
    """One row per physical disk, as ``iostat -x``: bytes/s, I/Os per second, %util and await."""
    if devices is None or devices.disk_devices is None:
        return []
    return [
        [
            name,
            format_rate(v[0]),
            format_rate(v[1]),
            f"{v[2]:.1f}",
            f"{v[3]:.1f}",
            format_percent(v[4]),
            f"{v[5]:.1f} ms",
        ]
        for name, v in sorted(devices.disk_devices.items())
    ]


CORE_HEADERS: Final = ("CPU", "Busy")


def core_rows(sample: Heartbeat) -> Rows:
    """One row per logical CPU, numbered from 0 as ``mpstat -P ALL`` does."""
    return [[f"cpu{index}", format_percent(value)] for index, value in enumerate(sample.cpu_per_core_percent or [])]


MODE_HEADERS: Final = ("Mode", "Share of CPU time")
# The order top(1) lists them in; others the agent sends follow, sorted.
_MODE_ORDER: Final = ("user", "nice", "system", "iowait", "irq", "softirq", "steal")


def mode_rows(modes: Heartbeat | None, pressure: Heartbeat | None) -> Rows:
    """CPU time by mode, then pressure stall (some / full avg10) per resource."""
    rows: Rows = []
    shares = {} if modes is None or modes.cpu_mode_percent is None else modes.cpu_mode_percent
    names = [name for name in _MODE_ORDER if name in shares] + sorted(set(shares) - set(_MODE_ORDER))
    rows += [[name, format_percent(shares[name])] for name in names]
    stalls = {} if pressure is None or pressure.pressure_avg10_percent is None else pressure.pressure_avg10_percent
    for resource, values in sorted(stalls.items()):
        full = f", full {format_percent(values[1])}" if len(values) > 1 else ""
        rows.append([f"pressure {resource}", f"some {format_percent(values[0])}{full} (avg10)"])
    return rows


INTERFACE_HEADERS: Final = (
    "Interface",
    "Receive",
    "Send",
    "Rx errors",
    "Rx dropped",
    "Tx errors",
    "Tx dropped",
    "Link",
)


def interface_rows(sample: Heartbeat, errors: Heartbeat | None, down: Heartbeat | None) -> Rows:
    """One row per interface: rates, cumulative error and drop counts, and whether its link is down."""
    rates = sample.net_interfaces or {}
    error_map = {} if errors is None or errors.net_interface_errors is None else errors.net_interface_errors
    down_set = None if down is None or down.net_interfaces_down is None else set(down.net_interfaces_down)
    rows: Rows = []
    for name in sorted(set(rates) | set(error_map) | (down_set or set())):
        rate = rates.get(name)
        counts: Sequence[int | None] = error_map.get(name) or [None] * 4
        link = "" if down_set is None else ("down" if name in down_set else "up")
        rx, tx = (None, None) if rate is None else (rate[0], rate[1])
        rows.append([name, format_rate(rx), format_rate(tx), *(_count(count) for count in counts), link])
    return rows


def connection_text(tcp: Heartbeat | None) -> str:
    """'TCP: 12 established, 3 in TIME-WAIT (as of ...)', or '' when not sent."""
    if tcp is None:
        return ""
    parts = []
    if tcp.tcp_established is not None:
        parts.append(f"{tcp.tcp_established:,} established")
    if tcp.tcp_time_wait is not None:
        parts.append(f"{tcp.tcp_time_wait:,} in TIME-WAIT")
    return f"TCP: {', '.join(parts)} ({as_of(tcp)})" if parts else ""


def file_handle_text(handles: Heartbeat | None) -> str:
    """'1,234 of 9,999 (12.3 %)' for the system's file handles, or '' when not sent."""
    if handles is None or handles.fd_allocated is None:
        return ""
    if handles.fd_max is None:
        return f"{handles.fd_allocated:,} allocated"
    return f"{handles.fd_allocated:,} of {handles.fd_max:,} ({_share(handles.fd_allocated, handles.fd_max)})"


TEMPERATURE_HEADERS: Final = ("Sensor", "Temperature")


def temperature_rows(sample: Heartbeat) -> Rows:
    """One row per sensor, hottest first."""
    sensors = sorted((sample.temperatures or {}).items(), key=lambda item: (-item[1], item[0]))
    return [[label, f"{celsius:.1f} °C"] for label, celsius in sensors]


GPU_HEADERS: Final = ("GPU", "Name", "Busy", "Memory used", "of", "Temperature", "Power")


def gpu_rows(gpus: Heartbeat | None) -> Rows:
    """One row per GPU by index, as ``nvidia-smi`` lists them; a value the device did not give is blank."""
    if gpus is None or gpus.gpus is None:
        return []
    return [
        [
            f"gpu{gpu.index}",
            gpu.name or "",
            format_percent(gpu.utilization_percent),
            format_bytes(gpu.memory_used_bytes),
            format_bytes(gpu.memory_total_bytes),
            "" if gpu.temperature_celsius is None else f"{gpu.temperature_celsius:.0f} °C",
            "" if gpu.power_watts is None else f"{gpu.power_watts:.1f} W",
        ]
        for gpu in sorted(gpus.gpus, key=lambda gpu: gpu.index)
    ]


PROCESS_HEADERS: Final = ("Top by", "PID", "Name", "CPU", "Resident")


def process_rows(sample: Heartbeat) -> Rows:
    """The top processes by CPU, then by memory, as the agent sent them (only when asked to)."""
    rows: Rows = []
    for title, processes in (("CPU", sample.top_cpu), ("memory", sample.top_memory)):
        rows += [
            [title, str(p.pid), p.name, format_percent(p.cpu_percent), format_bytes(p.rss_bytes)]
            for p in processes or []
        ]
    return rows
