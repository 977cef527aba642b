"""Network interface counters from ``/proc/net/dev``, and which interfaces the machine totals count.

The totals count physical interfaces only: those with a device behind
``/sys/class/net/IF/device`` (PCI, virtio, USB, Xen). A bridge, its veth
ports, ifb, tun/tap, VLANs, bonds and loopback have none, and their bytes
are the same bytes again: a 5.25 MB/s stream through a Docker bridge showed
as 10.5 MB/s when every interface was summed (issue 14). Per-interface
figures are kept for every interface but loopback.

Where no interface is physical (inside a container, whose eth0 is a veth),
the totals count every interface that is not loopback, a bridge, a bridge
port or an ifb, so a container still has totals.

Not here: rates (``agent.rates``), or the non-Linux fallback through psutil
(``agent.sampler``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NamedTuple

from agent.procfs import HostPaths, read_text
from shared.limits import MAX_INTERFACES

LOOPBACK = "lo"
# Intermediate functional blocks re-inject traffic for shaping (tc); their bytes are another device's.
_IFB_PREFIX = "ifb"


class NetCounters(NamedTuple):
    """One interface's cumulative counters since it was created (bytes and packets)."""

    rx_bytes: int
    tx_bytes: int
    rx_errors: int
    rx_dropped: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> dict[str, NetCounters]:
    """Parse ``/proc/net/dev``; the two header lines and malformed lines are skipped.

    A line is ``name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes packets errs drop ...``.
    The name ends at the last colon, which may touch the first number (psutil does the same).
    """
    counters: dict[str, NetCounters] = {}
    for line in text.splitlines():
        name, colon, rest = line.rpartition(":")
        fields = rest.split()
        if not colon or len(fields) < 16:
            continue
        try:
            values = [int(field) for field in fields[:16]]
        except ValueError:
            continue
        counters[name.strip()] = NetCounters(values[0], values[8], values[2], values[3], values[10], values[11])
    return counters


def read_net_dev(host: HostPaths) -> dict[str, NetCounters] | None:
    """Every interface's counters, or None where there is no ``/proc/net/dev``."""
    text = read_text(host.proc / "net" / "dev")
    return None if text is None else parse_net_dev(text)


def is_physical(name: str, sys_root: Path) -> bool:
    """True if a device (PCI, virtio, USB...) is behind the interface, as ``ip -d link`` would show."""
    return (sys_root / "class" / "net" / name / "device").exists()


def counted_interfaces(names: Iterable[str], sys_root: Path) -> frozenset[str]:
    """The interfaces the machine's rx/tx totals sum: physical ones, or failing those, the non-virtual rest."""
    listed = [name for name in names if name != LOOPBACK]
    physical = frozenset(name for name in listed if is_physical(name, sys_root))
    if physical:
        return physical
    net = sys_root / "class" / "net"

    def stacked(name: str) -> bool:
        return name.startswith(_IFB_PREFIX) or (net / name / "bridge").exists() or (net / name / "brport").exists()

    return frozenset(name for name in listed if not stacked(name))


def first_interfaces(names: Iterable[str], counted: Collection[str] | None) -> list[str]:
    """At most MAX_INTERFACES names, counted (physical) ones first so 64 veths never push eth0 out; sorted."""
    ordered = sorted(names, key=lambda name: (counted is not None and name not in counted, name))
    return sorted(ordered[:MAX_INTERFACES])


def link_up(name: str, sys_root: Path) -> bool | None:
    """The interface's operational state: True for "up", False for "down", None when unknown or absent."""
    state = read_text(sys_root / "class" / "net" / name / "operstate")
    if state is None:
        return None
    state = state.strip()
    if state == "up":
        return True
    if state in {"down", "lowerlayerdown", "notpresent"}:
        return False
    return None  # "unknown", "dormant", "testing": drivers that do not say
