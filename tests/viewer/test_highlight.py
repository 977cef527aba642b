"""Threshold highlights: a figure that needs looking at is tinted, bold and marked, never by colour alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QFont, QFontMetrics
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry, Snapshot
from tests.support.messages import GIB, WALL_T0, facts, heartbeat, status
from tests.viewer.helpers import rendered_text, start_window, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.window import MainWindow

CALM_DISKS = {"/": [100 * GIB, 40 * GIB, 60 * GIB]}


def node(node_id: str, state: str = "online", **sample: object) -> NodeEntry:
    """A four-core node with a calm sample, overridden by ``sample``."""
    fields: dict[str, object] = {"cpu": 10.0, "mem": 40.0, "disks": CALM_DISKS, "load_avg": [0.5, 0.5, 0.5], **sample}
    return NodeEntry(status=status(node_id, state), facts=facts(node_id), last_sample=heartbeat(**fields))  # type: ignore[arg-type]


def fleet() -> Snapshot:
    """calm; warm (CPU 85: warning); hot (CPU 95, memory 92, disk full, load 9 on 4 cores: critical); old (stale)."""
    nodes = [
        node("calm"),
        node("warm", cpu=85.0),
        node("hot", cpu=95.0, mem=92.0, disks={"/": [100, 96, 0]}, load_avg=[9.0, 1.0, 1.0]),
        node("old", "stale", cpu=99.0),
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    """A window on the fleet above, from a real loopback subscribe server."""
    srv = SubscribeServer(fleet)
    srv.start()
    win = start_window(qtbot, srv.url, rows=4)
    yield win
    win.close()
    srv.close()


def data(win: MainWindow, node_id: str, column: Column, role: Qt.ItemDataRole) -> object:
    """The table's ``role`` for ``node_id`` in ``column``."""
    return win.proxy.index(visible_nodes(win).index(node_id), column).data(role)


def looks(win: MainWindow, node_id: str, column: Column) -> tuple[str, bool, bool]:
    """(text, bold, tinted) of one cell, as the operator sees it."""
    text = data(win, node_id, column, Qt.ItemDataRole.DisplayRole)
    font = data(win, node_id, column, Qt.ItemDataRole.FontRole)
    tint = data(win, node_id, column, Qt.ItemDataRole.BackgroundRole)
    return str(text), isinstance(font, QFont) and font.bold(), isinstance(tint, QColor)


class TestHighlight:
    def test_calm_figures_are_plain(self, window: MainWindow) -> None:
        """Figures under every threshold show plainly: no mark, not bold, no tint."""
        for column in (Column.CPU, Column.MEMORY, Column.DISK, Column.LOAD):
            text, bold, tinted = looks(window, "calm", column)
            assert not text.startswith("▲")
            assert not bold
            assert not tinted

    def test_warning_is_marked_bold_and_tinted(self, window: MainWindow) -> None:
        """CPU 85 % (warning at 80) reads '▲ 85.0 %', bold, on a tint, and the tooltip names the threshold."""
        assert looks(window, "warm", Column.CPU) == ("▲ 85.0 %", True, True)
        tip = data(window, "warm", Column.CPU, Qt.ItemDataRole.ToolTipRole)
        assert isinstance(tip, str)
        assert rendered_text(tip) == "CPU 85.0 % is at or above the warning threshold (80 %)"

    @pytest.mark.parametrize(
        ("column", "text"),
        [
            (Column.CPU, "▲▲ 95.0 %"),
            (Column.MEMORY, "▲▲ 92.0 %"),
            (Column.DISK, "▲▲ 100 %"),  # a full figure drops its decimal, so the mark fits the column
            (Column.LOAD, "▲▲ 9.00 1.00 1.00"),
        ],
    )
    def test_critical_has_a_double_mark(self, window: MainWindow, column: Column, text: str) -> None:
        """Critical figures (CPU, memory, df's fullest disk, load per core) read '▲▲', bold and tinted."""
        assert looks(window, "hot", column) == (text, True, True)

    def test_critical_tint_differs_from_warning(self, window: MainWindow) -> None:
        """Critical and warning cells are tinted differently."""
        warm = data(window, "warm", Column.CPU, Qt.ItemDataRole.BackgroundRole)
        hot = data(window, "hot", Column.CPU, Qt.ItemDataRole.BackgroundRole)
        assert warm != hot

    def test_load_tooltip_is_per_core(self, window: MainWindow) -> None:
        """The load tooltip explains the figure per core (9 on 4 cores is 2.25 per core)."""
        tip = data(window, "hot", Column.LOAD, Qt.ItemDataRole.ToolTipRole)
        assert isinstance(tip, str)
        assert "Load 2.25 per core is at or above the critical threshold (2 per core)" in rendered_text(tip)

    def test_old_figures_are_not_highlighted(self, window: MainWindow) -> None:
        """A stale node's 99 % is old: dimmed, never marked as if it were live."""
        assert looks(window, "old", Column.CPU) == ("99.0 %", False, False)

    def test_disconnected_drops_the_tint_not_the_mark(self, window: MainWindow, qtbot: QtBot) -> None:
        """While disconnected the tint goes (everything is greyed) but the mark and bold stay readable."""
        window.model.set_connected(False)
        assert looks(window, "hot", Column.CPU) == ("▲▲ 95.0 %", True, False)

    @pytest.mark.parametrize("column", [Column.CPU, Column.MEMORY, Column.DISK])
    def test_a_full_critical_figure_fits_its_column(self, window: MainWindow, column: Column) -> None:
        """'▲▲ 100 %' in bold fits the default column width: the figure is never elided to '▲▲ 100.…'."""
        bold = window.table.font()
        bold.setBold(True)
        header = window.table.horizontalHeader()
        assert header is not None
        assert QFontMetrics(bold).horizontalAdvance("▲▲ 100 %") + 8 <= header.sectionSize(column)
