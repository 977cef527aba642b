"""Small kernel-wide readings from procfs: pressure stall information, TCP socket counts, file handles.

Each reader takes ``HostPaths`` and returns None where the file is missing
or unreadable (a kernel without PSI, macOS); a malformed value is treated
the same, never raised on. node_exporter reads the same files: its
``pressure``, ``netstat`` + ``sockstat`` and ``filefd`` collectors.
Not here: rates or the wire shape (``agent.extras``).
"""

from __future__ import annotations

from typing import NamedTuple

from agent.procfs import HostPaths, read_text

PSI_RESOURCES = ("cpu", "io", "memory")


class Pressure(NamedTuple):
    """Share of the last 10 s in which some, or all, non-idle tasks stalled on a resource, percent."""

    some_avg10: float
    full_avg10: float | None  # /proc/pressure/cpu has no "full" line before Linux 5.13


def parse_pressure(text: str) -> Pressure | None:
    """Parse ``some avg10=.. avg60=.. avg300=.. total=..`` and ``full ...`` (Documentation/accounting/psi.rst)."""
    avg10: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            key, _, value = field.partition("=")
            if key == "avg10":
                try:
                    avg10[kind] = min(100.0, max(0.0, float(value)))
                except ValueError:
                    return None
    if "some" not in avg10:
        return None
    return Pressure(avg10["some"], avg10.get("full"))


def read_pressure(host: HostPaths) -> dict[str, Pressure] | None:
    """PSI of cpu, io and memory; None where the kernel has no PSI (before 4.20, or ``psi=0``)."""
    found = {}
    for resource in PSI_RESOURCES:
        text = read_text(host.proc / "pressure" / resource)
        pressure = parse_pressure(text) if text is not None else None
        if pressure is not None:
            found[resource] = pressure
    return found or None


class TcpCounts(NamedTuple):
    """TCP connections now: tcpCurrEstab (RFC 1213: ESTABLISHED or CLOSE-WAIT) and those in TIME-WAIT."""

    established: int | None
    time_wait: int | None


def _snmp_value(text: str, section: str, name: str) -> int | None:
    """A value of ``/proc/net/snmp``, where each section is a header line followed by a value line."""
    lines = [line.split() for line in text.splitlines() if line.startswith(section + ":")]
    if len(lines) < 2 or name not in lines[0] or len(lines[1]) != len(lines[0]):
        return None
    try:
        return max(0, int(lines[1][lines[0].index(name)]))
    except ValueError:
        return None


def _sockstat_tw(text: str) -> int | None:
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["TCP:"] and "tw" in fields[1:-1]:
            try:
                return max(0, int(fields[fields.index("tw") + 1]))
            except ValueError:
                return None
    return None


def read_tcp(host: HostPaths) -> TcpCounts | None:
    """TCP counts of this network namespace, from ``/proc/net/snmp`` and ``/proc/net/sockstat``."""
    snmp = read_text(host.proc / "net" / "snmp")
    sockstat = read_text(host.proc / "net" / "sockstat")
    counts = TcpCounts(
        _snmp_value(snmp, "Tcp", "CurrEstab") if snmp is not None else None,
        _sockstat_tw(sockstat) if sockstat is not None else None,
    )
    return None if counts == TcpCounts(None, None) else counts


class FileHandles(NamedTuple):
    """System-wide file handles: allocated (in use, as node_filefd_allocated) and the kernel's maximum."""

    allocated: int
    maximum: int


def read_file_handles(host: HostPaths) -> FileHandles | None:
    """Parse ``/proc/sys/fs/file-nr``: ``allocated  unused(always 0 since 2.6)  max``."""
    text = read_text(host.proc / "sys" / "fs" / "file-nr")
    fields = text.split() if text is not None else []
    if len(fields) != 3:
        return None
    try:
        allocated, _, maximum = (int(field) for field in fields)
    except ValueError:
        return None
    if allocated < 0 or maximum < 0:
        return None
    return FileHandles(allocated, maximum)
