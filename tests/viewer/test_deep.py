"""Deep on one node: the detail tabs show disks as df, cores, interfaces, sensors, processes and facts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PyQt6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from shared.messages import Heartbeat, NodeEntry, ProcessUsage, Snapshot
from tests.support.messages import WALL_T0, facts, heartbeat, history, status, update
from tests.viewer.helpers import HOSTILE_TEXT, batch_of, start_window
from tests.viewer.subscribe_server import SubscribeServer
from viewer.detailtabs import DetailTable
from viewer.window import MainWindow

GIB = 1024**3
SLOW: dict[str, Any] = {
    "disk_inodes": {"/": [1000, 250], "/boot": [100, 100]},
    "disks_read_only": ["/boot"],
    "cpu_mode_percent": {"user": 30.0, "system": 10.0, "iowait": 5.0, "steal": 1.0},
    "pressure_avg10_percent": {"cpu": [2.5], "io": [1.0, 0.5]},
    "disk_devices": {"sda": [1024.0, 2048.0, 3.0, 4.0, 12.5, 0.8]},
    "net_interface_errors": {"eth0": [1, 2, 3, 4]},
    "net_interfaces_down": ["eth1"],
    "tcp_established": 12,
    "tcp_time_wait": 3,
    "fd_allocated": 1500,
    "fd_max": 10000,
}
FAST: dict[str, Any] = {
    "disks": {"/": [100 * GIB, 20 * GIB, 75 * GIB], "/boot": [GIB, GIB // 2, GIB // 2], HOSTILE_TEXT: [GIB, 0, GIB]},
    "cpu_per_core_percent": [91.0, 9.0],
    "net_interfaces": {"eth0": [1024.0, 2048.0], "eth1": [0.0, 0.0]},
    "temperatures": {"Package id 0": 55.0, "nvme": 41.5},
    "top_cpu": [ProcessUsage(pid=42, name=HOSTILE_TEXT, cpu_percent=88.0, rss_bytes=GIB)],
}


def sample(seq: int, *, slow: bool) -> Heartbeat:
    """A heartbeat of node "deep"; ``slow`` adds the slow-tier details (every ~5 s)."""
    return heartbeat(seq, sampled_at=WALL_T0 + seq, **FAST, **(SLOW if slow else {}))


def deep_entry(seq: int, *, slow: bool) -> NodeEntry:
    """Node "deep" as an update carries it."""
    return NodeEntry(status=status("deep", last_seen_at=WALL_T0 + seq, seq=seq), last_sample=sample(seq, slow=slow))


def fleet() -> Snapshot:
    """One node whose snapshot sample carries the slow-tier details."""
    node = NodeEntry(status=status("deep"), facts=facts("deep"), last_sample=sample(1, slow=True), history=history())
    return Snapshot(server_time_at=WALL_T0, nodes=[node])


@pytest.fixture
def server() -> Iterator[SubscribeServer]:
    """A real loopback subscribe server with node "deep"."""
    srv = SubscribeServer(fleet)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def window(qtbot: QtBot, server: SubscribeServer) -> Iterator[MainWindow]:
    """A window following ``server`` with node "deep" selected."""
    win = start_window(qtbot, server.url, rows=1)
    assert win.select_node("deep")
    yield win
    win.close()


def table(win: MainWindow, tab: str, name: str) -> list[list[str]]:
    """The rows the table ``name`` of tab ``tab`` shows, after bringing that tab to the front."""
    widget = win.detail.show_tab(tab).findChild(QTableWidget, name)
    assert isinstance(widget, DetailTable)
    return widget.texts()


def note(win: MainWindow, tab: str) -> str:
    """The note over tab ``tab``."""
    return win.detail.tables.tabs[[t for t, _w in win.detail.tables.tabs].index(tab)][1].note.text()


class TestTabs:
    def test_tab_titles(self, window: MainWindow) -> None:
        """The pane offers Charts, Disks, CPU, Net, Temps, Top (processes) and Facts, all in view at once."""
        tabs = window.detail.tabs
        titles = [tabs.tabText(index) for index in range(tabs.count())]
        assert titles == ["Charts", "Disks", "CPU", "Net", "Temps", "Top", "Facts"]
        bar = tabs.tabBar()
        assert bar is not None
        assert bar.sizeHint().width() <= tabs.width()  # no scroll arrows at the default 1280x760

    def test_overview_has_five_linked_charts(self, window: MainWindow) -> None:
        """CPU, memory, load, network and disk I/O charts share one time axis and start from history."""
        charts = window.detail.overview.charts
        assert len(charts) == 5
        assert all(chart.plot.getViewBox().linkedView(0) is charts[0].plot.getViewBox() for chart in charts[1:])
        assert window.detail.chart_points() >= 5

    def test_disks_as_df(self, window: MainWindow) -> None:
        """Every mount shows size, used, available and Use% as df, plus inodes and read-only, fullest first."""
        rows = table(window, "Disks", "disks")
        assert rows[0] == ["/boot", "1 GiB", "512 MiB", "512 MiB", "50.0 %", "0", "0.0 %", "read-only"]
        assert rows[1] == ["/", "100 GiB", "20 GiB", "75 GiB", "21.1 %", "750", "75.0 %", "rw"]
        assert rows[2][0] == HOSTILE_TEXT  # a mount point is peer text: shown literally
        assert table(window, "Disks", "devices") == [["sda", "1 KiB/s", "2 KiB/s", "3.0", "4.0", "12.5 %", "0.8 ms"]]
        assert "inodes as of" in note(window, "Disks")

    def test_cpu_cores_and_modes(self, window: MainWindow) -> None:
        """Per-core figures, CPU time by mode and pressure stall are listed."""
        assert table(window, "CPU", "cores") == [["cpu0", "91.0 %"], ["cpu1", "9.0 %"]]
        modes = table(window, "CPU", "modes")
        assert modes[:4] == [["user", "30.0 %"], ["system", "10.0 %"], ["iowait", "5.0 %"], ["steal", "1.0 %"]]
        assert ["pressure io", "some 1.0 %, full 0.5 % (avg10)"] in modes

    def test_network_interfaces(self, window: MainWindow) -> None:
        """Each interface shows its rates, error and drop counts and whether its link is down; TCP counts too."""
        assert table(window, "Net", "interfaces") == [
            ["eth0", "1 KiB/s", "2 KiB/s", "1", "2", "3", "4", "up"],
            ["eth1", "0 B/s", "0 B/s", "", "", "", "", "down"],
        ]
        assert "TCP: 12 established, 3 in TIME-WAIT" in note(window, "Net")

    def test_temperatures_and_processes(self, window: MainWindow) -> None:
        """Temperature sensors read hottest first; a top process's name shows literally, markup and all."""
        assert table(window, "Temps", "temperatures") == [["Package id 0", "55.0 °C"], ["nvme", "41.5 °C"]]
        assert table(window, "Top", "processes") == [["CPU", "42", HOSTILE_TEXT, "88.0 %", "1 GiB"]]

    def test_facts_tab(self, window: MainWindow) -> None:
        """The Facts tab shows the hostname and the system's file handles."""
        window.detail.show_tab("Facts")
        assert window.detail.fact("Hostname").text() == "deep"
        assert window.detail.fact("File handles").text() == "1,500 of 10,000 (15.0 %)"


class TestSlowTier:
    def test_details_survive_fast_heartbeats(self, window: MainWindow, server: SubscribeServer, qtbot: QtBot) -> None:
        """Heartbeats without the 5 s details keep showing the last ones, with their time."""
        server.push(update(deep_entry(3, slow=False), server_time_at=WALL_T0 + 3))
        qtbot.waitUntil(lambda: window.model.node("deep").sample.seq == 3, timeout=3000)  # type: ignore[union-attr]
        assert table(window, "Disks", "disks")[1][5:] == ["750", "75.0 %", "rw"]
        assert table(window, "Net", "interfaces")[0][3:] == ["1", "2", "3", "4", "up"]
        assert window.detail.fact("File handles").text().startswith("1,500 of")

    def test_details_go_after_three_periods(self, window: MainWindow, server: SubscribeServer, qtbot: QtBot) -> None:
        """Details not sent for three slow periods (15 s at 1 Hz) are gone, not shown as current."""
        server.push(update(deep_entry(20, slow=False), server_time_at=WALL_T0 + 20))
        qtbot.waitUntil(lambda: window.model.node("deep").sample.seq == 20, timeout=3000)  # type: ignore[union-attr]
        assert table(window, "Disks", "disks")[1][5:] == ["", "", ""]
        assert table(window, "Net", "interfaces")[0][3:] == ["", "", "", "", ""]
        assert window.detail.fact("File handles").text() == ""

    def test_merged_batch_keeps_details(self) -> None:
        """Two heartbeats of one node merged into one UI batch keep the older one's details."""
        batch = batch_of(update(deep_entry(5, slow=True)), update(deep_entry(6, slow=False)))
        merged = batch.entries["deep"].last_sample
        assert merged is not None
        assert merged.seq == 6
        assert merged.disk_inodes == SLOW["disk_inodes"]
