"""Disk fullness reads as ``df`` shows it: blocks reserved for root count as full (docs/protocol.md 5.2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry, Snapshot
from tests.support.messages import WALL_T0, facts, heartbeat, status
from tests.viewer.helpers import start_window, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.window import MainWindow

# An ext4-like mount: 100 blocks, 20 used, 5 reserved for root, so 75 available to users.
EXT4_RESERVED = {"/": [100, 20, 75]}


def fleet() -> Snapshot:
    """ext4 (a current agent, three values), old (an older agent, [total, used])."""
    nodes = [
        NodeEntry(status=status("ext4"), facts=facts("ext4"), last_sample=heartbeat(disks=EXT4_RESERVED)),
        NodeEntry(status=status("old"), facts=facts("old"), last_sample=heartbeat(disks={"/": [100, 20]})),
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    """A window on the two-node fleet above, from a real loopback subscribe server."""
    srv = SubscribeServer(fleet)
    srv.start()
    win = start_window(qtbot, srv.url, rows=2)
    yield win
    win.close()
    srv.close()


def disk_cell(win: MainWindow, node_id: str) -> object:
    """The Disk column's text for ``node_id``."""
    return win.proxy.index(visible_nodes(win).index(node_id), Column.DISK).data(Qt.ItemDataRole.DisplayRole)


class TestDiskFullness:
    def test_reserved_blocks_count_as_full(self, window: MainWindow) -> None:
        """A 5 %-reserved ext4 with 20 used and 75 available reads 21.1 %, as df says, not 20 %."""
        assert disk_cell(window, "ext4") == "21.1 %"

    def test_older_agent_two_values(self, window: MainWindow) -> None:
        """An older agent's [total, used] still reads used / total."""
        assert disk_cell(window, "old") == "20.0 %"

    def test_filter_uses_df_fullness(self, window: MainWindow, qtbot: QtBot) -> None:
        """The filter disk>21 keeps the reserved ext4 (21.1 %) and drops the 20 % disk."""
        window.filter_box.setText("disk>21")
        qtbot.waitUntil(lambda: visible_nodes(window) == ["ext4"], timeout=2000)

    def test_sort_uses_df_fullness(self, window: MainWindow) -> None:
        """A Disk sort (descending, the first click) puts the reserved ext4 above the 20 % disk."""
        window.table.sortByColumn(Column.DISK, Qt.SortOrder.DescendingOrder)
        assert visible_nodes(window) == ["ext4", "old"]
