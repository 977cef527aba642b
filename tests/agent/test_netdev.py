"""/proc/net/dev parsing and which interfaces the totals count, on the recorded bridge tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.netdev import NetCounters, counted_interfaces, link_up, parse_net_dev, read_net_dev
from agent.procfs import HostPaths

BRIDGE = Path(__file__).parent / "trees" / "bridge"


class TestNetDev:
    def test_recorded_counters(self) -> None:
        """Bytes, errors and drops come from their columns, also where the name touches the first number."""
        counters = read_net_dev(HostPaths.under(BRIDGE))
        assert counters is not None
        assert counters["eth0"] == NetCounters(40_000_000_000, 90_000_000_000, 3, 120, 0, 0)
        assert counters["docker0"].rx_bytes == 88_000_000_000
        assert set(counters) == {"lo", "eth0", "docker0", "veth1a2b3c", "ifb0", "tun0"}

    @pytest.mark.parametrize("line", ["eth0: 1 2 3", "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", "x: " + "a " * 16])
    def test_malformed_lines_are_skipped(self, line: str) -> None:
        """A short, colon-less or non-numeric line is left out, never raised on."""
        assert parse_net_dev(line) == {}

    def test_only_physical_interfaces_are_counted(self) -> None:
        """eth0 has a device behind it; the bridge, veth, ifb, tun and loopback do not."""
        names = ["lo", "eth0", "docker0", "veth1a2b3c", "ifb0", "tun0"]
        assert counted_interfaces(names, BRIDGE / "sys") == {"eth0"}

    def test_without_physical_interfaces_bridges_and_ports_still_skip(self, tmp_path: Path) -> None:
        """With no device anywhere, bridges, bridge ports and ifb stay out of the totals; the rest count."""
        net = tmp_path / "class" / "net"
        for path in ("br0/bridge", "veth0/brport", "ifb0", "eth0", "wg0"):
            (net / path).mkdir(parents=True)
        assert counted_interfaces(["lo", "br0", "veth0", "ifb0", "eth0", "wg0"], tmp_path) == {"eth0", "wg0"}

    @pytest.mark.parametrize(("state", "expected"), [("up", True), ("down", False), ("unknown", None), (None, None)])
    def test_link_state(self, tmp_path: Path, state: str | None, expected: bool | None) -> None:
        """operstate up/down is the link state; unknown (tun, loopback) and a missing file are not a state."""
        directory = tmp_path / "class" / "net" / "eth0"
        directory.mkdir(parents=True)
        if state is not None:
            (directory / "operstate").write_text(state + "\n")
        assert link_up("eth0", tmp_path) is expected
