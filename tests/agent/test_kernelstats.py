"""PSI, TCP counts and file handles parsed from procfs text; anything odd reads as not measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.kernelstats import (
    FileHandles,
    Pressure,
    TcpCounts,
    parse_pressure,
    read_file_handles,
    read_pressure,
    read_tcp,
)
from agent.procfs import HostPaths

SNMP = (
    "Ip: Forwarding DefaultTTL\nIp: 1 64\n"
    "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs\n"
    "Tcp: 1 200 120000 -1 25492 7820 17655 2234 7 353750\n"
)
SOCKSTAT = "sockets: used 40\nTCP: inuse 12 orphan 0 tw 747 alloc 12 mem 67\nUDP: inuse 3 mem 2\n"


def write(root: Path, name: str, text: str) -> None:
    path = root / "proc" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class TestPressure:
    def test_some_and_full(self) -> None:
        """avg10 of the some and full lines are the shares of the last 10 s stalled."""
        text = (
            "some avg10=11.07 avg60=8.65 avg300=4.08 total=26952732\nfull avg10=0.09 avg60=0.00 avg300=0.00 total=0\n"
        )
        assert parse_pressure(text) == Pressure(11.07, 0.09)

    def test_cpu_without_full_line(self) -> None:
        """Before Linux 5.13 /proc/pressure/cpu has only a some line."""
        assert parse_pressure("some avg10=1.50 avg60=0.00 avg300=0.00 total=5\n") == Pressure(1.5, None)

    @pytest.mark.parametrize("text", ["", "some avg10=x avg60=0", "full avg10=1.0 total=3"])
    def test_malformed_is_not_measured(self, text: str) -> None:
        """A file without a readable some avg10 gives no pressure rather than a made-up 0."""
        assert parse_pressure(text) is None

    def test_kernel_without_psi(self, tmp_path: Path) -> None:
        """No /proc/pressure at all (psi=0, or a kernel before 4.20) is not measured."""
        assert read_pressure(HostPaths.under(tmp_path)) is None
        write(
            tmp_path,
            "pressure/io",
            "some avg10=2.00 avg60=0 avg300=0 total=1\nfull avg10=1.00 avg60=0 avg300=0 total=1\n",
        )
        assert read_pressure(HostPaths.under(tmp_path)) == {"io": Pressure(2.0, 1.0)}


class TestTcp:
    def test_established_and_time_wait(self, tmp_path: Path) -> None:
        """CurrEstab comes from /proc/net/snmp by its header, TIME-WAIT from sockstat's tw."""
        write(tmp_path, "net/snmp", SNMP)
        write(tmp_path, "net/sockstat", SOCKSTAT)
        assert read_tcp(HostPaths.under(tmp_path)) == TcpCounts(7, 747)

    @pytest.mark.parametrize(("snmp", "sockstat"), [("Tcp: CurrEstab\n", "TCP: inuse 1\n"), ("", "TCP: tw x alloc\n")])
    def test_malformed_is_not_measured(self, tmp_path: Path, snmp: str, sockstat: str) -> None:
        """A header without values, or a non-number, is no count."""
        write(tmp_path, "net/snmp", snmp)
        write(tmp_path, "net/sockstat", sockstat)
        assert read_tcp(HostPaths.under(tmp_path)) is None


class TestFileHandles:
    def test_file_nr(self, tmp_path: Path) -> None:
        """file-nr's first and third numbers are the handles allocated and the maximum."""
        write(tmp_path, "sys/fs/file-nr", "1490\t0\t9223372036854775807\n")
        assert read_file_handles(HostPaths.under(tmp_path)) == FileHandles(1490, 9223372036854775807)

    @pytest.mark.parametrize("text", ["", "1 2", "a 0 3", "-1 0 5"])
    def test_malformed_is_not_measured(self, tmp_path: Path, text: str) -> None:
        """Anything but three non-negative numbers is no reading."""
        write(tmp_path, "sys/fs/file-nr", text)
        assert read_file_handles(HostPaths.under(tmp_path)) is None
