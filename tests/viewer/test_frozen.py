"""State and Node stay in view when the table scrolls sideways; the header's menu chooses the other columns.

Fed by a real collector CLI on loopback and a real agent process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.support.processes import CollectorProc, ProcessGroup
from tests.viewer.helpers import start_window
from viewer.cells import Column
from viewer.window import MainWindow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProc]:
    """A real collector with two real agents."""
    workdir = tmp_path_factory.mktemp("frozen")
    group = ProcessGroup(workdir)
    running = group.collector("--log-level", "WARNING")
    for node_id in ("alpha", "bravo"):
        group.agent(running.url, node_id, "--interval", "0.5", "--state-dir", str(workdir / f"state-{node_id}"))
    yield running
    group.close()


def scrolled_right(qtbot: QtBot, url: str) -> MainWindow:
    """A narrow window whose table is scrolled all the way right."""
    win = start_window(qtbot, url, 2)
    win.resize(640, 400)
    win.splitter.setSizes([360, 280])
    bar = win.table.horizontalScrollBar()
    assert bar is not None
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5000)
    bar.setValue(bar.maximum())
    return win


class TestFrozenColumns:
    def test_state_and_node_stay_visible_when_scrolled_sideways(self, qtbot: QtBot, collector: CollectorProc) -> None:
        """Scrolled fully right, the table's own Node column is off-screen; the overlay still shows State and Node."""
        win = scrolled_right(qtbot, collector.url)
        table, frozen = win.table, win.parts.frozen.view
        assert table.columnViewportPosition(Column.NODE) < 0  # the table's own copy scrolled away
        assert frozen.isVisible()
        assert frozen.geometry().left() <= table.viewport().geometry().left()  # type: ignore[union-attr]
        shown = [column for column in Column if not frozen.isColumnHidden(column)]
        assert shown == [Column.NODE, Column.STATE]
        header = frozen.horizontalHeader()
        assert header is not None
        assert [header.logicalIndex(0), header.logicalIndex(1)] == [Column.STATE, Column.NODE]
        node_cell = frozen.visualRect(win.proxy.index(0, Column.NODE))
        assert node_cell.left() >= 0
        assert node_cell.right() <= frozen.viewport().width()  # type: ignore[union-attr]
        assert win.proxy.index(0, Column.NODE).data() in {"alpha", "bravo"}
        win.close()

    def test_clicking_the_overlay_selects_the_node(self, qtbot: QtBot, collector: CollectorProc) -> None:
        """A click on a frozen Node cell selects that node, as a click on the table would."""
        win = scrolled_right(qtbot, collector.url)
        frozen = win.parts.frozen.view
        index = win.proxy.index(1, Column.NODE)
        viewport = frozen.viewport()
        assert viewport is not None
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=frozen.visualRect(index).center())  # type: ignore[no-untyped-call]
        assert win.selected_node_id == index.data()
        win.close()

    def test_overlay_follows_vertical_scrolling_and_widths(self, qtbot: QtBot, collector: CollectorProc) -> None:
        """The overlay scrolls with the table, and a wider Node column widens it."""
        win = scrolled_right(qtbot, collector.url)
        table, frozen = win.table, win.parts.frozen.view
        header = table.horizontalHeader()
        assert header is not None
        before = frozen.width()
        header.resizeSection(Column.NODE, header.sectionSize(Column.NODE) + 40)
        assert frozen.width() == before + 40
        assert frozen.columnWidth(Column.NODE) == header.sectionSize(Column.NODE)
        table.verticalScrollBar().setValue(1)  # type: ignore[union-attr]
        assert frozen.verticalScrollBar().value() == table.verticalScrollBar().value()  # type: ignore[union-attr]
        win.close()

    def test_header_menu_chooses_columns(self, qtbot: QtBot, collector: CollectorProc) -> None:
        """The header's menu lists every column but State and Node; unticking one hides it."""
        win = start_window(qtbot, collector.url, 2)
        menu = win.table.column_menu()
        titles = [action.text() for action in menu.actions()]
        assert "Node" not in titles
        assert "State" not in titles
        assert "Uptime" in titles
        uptime = next(action for action in menu.actions() if action.text() == "Uptime")
        uptime.trigger()
        assert win.table.isColumnHidden(Column.UPTIME)
        assert not win.parts.frozen.view.isHidden()
        assert win.table.horizontalHeader().contextMenuPolicy() is Qt.ContextMenuPolicy.CustomContextMenu  # type: ignore[union-attr]
        win.close()
