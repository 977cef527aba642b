"""The viewer is calm to use: rows hold still under the pointer, headers never pick nodes, charts stay put."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt6.QtGui import QEnterEvent
from PyQt6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry, Snapshot
from tests.support.messages import WALL_T0, entry, heartbeat, status, update
from tests.viewer.helpers import make_link, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.charts import RateAxis
from viewer.window import MainWindow


def mixed_fleet() -> Snapshot:
    """Five nodes: two live at different CPU, one stale, one offline, one idle."""
    nodes = [
        entry("calm", cpu=5.0),
        entry("busy", cpu=80.0),
        NodeEntry(status=status("late", "stale"), last_sample=heartbeat(cpu=99.0)),
        NodeEntry(status=status("gone", "offline"), last_sample=heartbeat(cpu=98.6)),
        entry("idle", cpu=1.0),
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def fleet() -> Iterator[SubscribeServer]:
    """A subscribe server with ``mixed_fleet``."""
    srv = SubscribeServer(mixed_fleet)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def window(qtbot: QtBot, fleet: SubscribeServer) -> Iterator[MainWindow]:
    """A 1280x760 window on ``fleet``."""
    win = MainWindow(make_link(fleet.url), collector_url=fleet.url)
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    qtbot.waitUntil(lambda: win.model.rowCount() == 5 and win.model.connected, timeout=5000)
    yield win
    win.close()


def pointer_over(win: MainWindow, inside: bool) -> None:
    """Move the pointer into (or out of) the table, as the window system reports it."""
    if inside:
        point = QPointF(10, 10)
        QApplication.sendEvent(win.table, QEnterEvent(point, point, point))
    else:
        QApplication.sendEvent(win.table, QEvent(QEvent.Type.Leave))


def is_frozen(win: MainWindow) -> bool:
    """Whether the user froze the order (a function, so mypy does not narrow it)."""
    return win.frozen


def click_header(qtbot: QtBot, win: MainWindow, column: Column) -> None:
    """Click the middle of ``column``'s header section."""
    header = win.table.horizontalHeader()
    assert header is not None
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))  # type: ignore[no-untyped-call]


class TestOrder:
    def test_default_order_is_problems_first(self, window: MainWindow) -> None:
        """Offline first, then stale, then live nodes busiest first."""
        assert visible_nodes(window) == ["gone", "late", "busy", "calm", "idle"]

    def test_rows_hold_still_under_the_pointer(self, qtbot: QtBot, fleet: SubscribeServer, window: MainWindow) -> None:
        """While the pointer is over the table, a CPU change does not move rows, and a mark says paused."""
        pointer_over(window, inside=True)
        assert window.paused_label.isVisible()
        fleet.push(update(entry("idle", seq=2, cpu=95.0, full=False)))
        qtbot.waitUntil(lambda: window.model.node("idle").sample.cpu_percent == 95.0, timeout=5000)  # type: ignore[union-attr]
        assert visible_nodes(window) == ["gone", "late", "busy", "calm", "idle"]
        pointer_over(window, inside=False)
        assert not window.paused_label.isVisible()
        assert visible_nodes(window) == ["gone", "late", "idle", "busy", "calm"]

    def test_z_freezes_and_unfreezes(self, qtbot: QtBot, fleet: SubscribeServer, window: MainWindow) -> None:
        """Z freezes the order (with a mark) until pressed again."""
        window.table.setFocus()
        qtbot.keyClick(window.table, Qt.Key.Key_Z)  # type: ignore[no-untyped-call]
        assert is_frozen(window)
        assert "frozen" in window.paused_label.text()
        fleet.push(update(entry("idle", seq=2, cpu=95.0, full=False)))
        qtbot.waitUntil(lambda: window.model.node("idle").sample.cpu_percent == 95.0, timeout=5000)  # type: ignore[union-attr]
        assert visible_nodes(window)[-1] == "idle"
        qtbot.keyClick(window.table, Qt.Key.Key_Space)  # type: ignore[no-untyped-call]
        assert not is_frozen(window)
        assert visible_nodes(window)[2] == "idle"

    def test_typing_z_in_the_filter_box_types(self, qtbot: QtBot, window: MainWindow) -> None:
        """The freeze key is text in the filter box, not a shortcut."""
        window.filter_box.setFocus()
        qtbot.keyClicks(window.filter_box, "z")  # type: ignore[no-untyped-call]
        assert window.filter_box.text() == "z"
        assert not window.frozen


class TestHeader:
    def test_a_header_click_never_selects_a_node(self, qtbot: QtBot, window: MainWindow) -> None:
        """Tabbing into the table and clicking headers sorts; the detail pane stays empty, nothing is selected."""
        window.filter_box.setFocus()
        window.table.setFocus(Qt.FocusReason.TabFocusReason)
        click_header(qtbot, window, Column.CPU)
        click_header(qtbot, window, Column.NODE)
        assert window.selected_node_id is None
        assert window.detail.node_id is None

    def test_a_header_click_keeps_the_selected_node(self, qtbot: QtBot, window: MainWindow) -> None:
        """With a node selected, sorting by another column keeps that node selected and shown."""
        window.select_node("calm")
        click_header(qtbot, window, Column.MEMORY)
        assert window.selected_node_id == "calm"
        current = window.table.currentIndex()
        assert current.siblingAtColumn(Column.NODE).data() == "calm"

    def test_metric_columns_sort_descending_on_first_click(self, qtbot: QtBot, window: MainWindow) -> None:
        """The first click on CPU shows the busiest live node first; Node sorts ascending."""
        click_header(qtbot, window, Column.CPU)
        assert visible_nodes(window)[:3] == ["busy", "calm", "idle"]
        click_header(qtbot, window, Column.NODE)
        assert visible_nodes(window)[0] == "busy"
        assert visible_nodes(window)[-1] == "late"

    def test_state_node_and_last_seen_fit_the_default_window(self, window: MainWindow) -> None:
        """At 1280x760 the State, Node and Last seen columns are all on screen without scrolling."""
        assert window.width() == 1280
        header = window.table.horizontalHeader()
        viewport = window.table.viewport()
        assert header is not None
        assert viewport is not None
        for column in (Column.STATE, Column.NODE, Column.LAST_SEEN):
            left = header.sectionViewportPosition(column)
            assert left >= 0
            assert left + header.sectionSize(column) // 2 <= viewport.width(), column.name

    def test_column_chooser_hides_and_shows_columns(self, window: MainWindow) -> None:
        """The header menu lists every column but Node and State; unticking one hides it."""
        menu = window.table.column_menu()
        titles = [action.text() for action in menu.actions()]
        assert "Node" not in titles
        assert "State" not in titles
        uptime = next(action for action in menu.actions() if action.text() == "Uptime")
        uptime.setChecked(False)
        assert window.table.isColumnHidden(Column.UPTIME)


class TestCharts:
    def test_percent_charts_stay_0_to_100_without_menu_or_autorange_button(
        self, qtbot: QtBot, window: MainWindow
    ) -> None:
        """CPU is drawn on a fixed 0-100 axis; pyqtgraph's context menu and 'A' button are off."""
        window.select_node("busy")
        qtbot.waitUntil(lambda: window.detail.chart_points() >= 30, timeout=5000)
        for chart in (window.detail.cpu_chart, window.detail.memory_chart):
            low, high = chart.percent_range
            assert low == pytest.approx(0.0)
            assert high == pytest.approx(100.0)
            item = chart.plot.getPlotItem()
            assert not item.menuEnabled()
            assert item.buttonsHidden

    def test_time_axes_are_linked(self, window: MainWindow) -> None:
        """Zooming the CPU chart in time zooms memory and network too."""
        cpu = window.detail.cpu_chart.plot
        cpu.setXRange(WALL_T0 - 10, WALL_T0, padding=0.0)
        for chart in (window.detail.memory_chart, window.detail.net_chart):
            low, high = chart.plot.getViewBox().viewRange()[0]
            assert low == pytest.approx(WALL_T0 - 10)
            assert high == pytest.approx(WALL_T0)

    def test_network_axis_counts_in_iec_units(self, qtbot: QtBot) -> None:
        """The network axis reads KiB/s and MiB/s like the table, never kB/s."""
        axis = RateAxis()
        assert axis.tickStrings([1536.0, 2.5 * 1024**2], 1.0, 512.0) == ["1.5 KiB/s", "2.5 MiB/s"]
        spacing = axis.tickSpacing(0.0, 10 * 1024**2, 200)
        assert all((step / 1024**2) == round(step / 1024**2, 6) for step, _ in spacing)


class TestSmallDetails:
    def test_a_selected_row_keeps_its_state_colour(self, window: MainWindow) -> None:
        """The selection highlight is not painted over the State cell, so a selected offline row still reads red."""
        window.select_node("gone")
        index = window.proxy.index(visible_nodes(window).index("gone"), Column.STATE)
        option = QStyleOptionViewItem()
        delegate = window.table.itemDelegateForColumn(Column.STATE)
        assert isinstance(delegate, QStyledItemDelegate)
        option.state |= QStyle.StateFlag.State_Selected
        delegate.initStyleOption(option, index)
        assert not option.state & QStyle.StateFlag.State_Selected
        assert index.data(Qt.ItemDataRole.BackgroundRole) is not None

    def test_an_empty_chart_shows_a_readable_time_axis(self, window: MainWindow) -> None:
        """With nothing selected, the charts span the last five minutes, not 0-1 s ('00.250' ticks)."""
        low, high = window.detail.cpu_chart.plot.getViewBox().viewRange()[0]
        assert high - low == pytest.approx(300.0)
        assert high > WALL_T0


class TestEmpty:
    def test_an_empty_collector_says_how_to_add_a_node(self, qtbot: QtBot) -> None:
        """Zero nodes: the banner says to start `nodewatch agent --collector URL` on a node."""
        empty = SubscribeServer(lambda: Snapshot(server_time_at=WALL_T0, nodes=[]))
        empty.start()
        win = MainWindow(make_link(empty.url), collector_url=empty.url)
        qtbot.addWidget(win)
        win.show()
        win.link.start()
        try:
            qtbot.waitUntil(lambda: win.model.connected, timeout=5000)
            assert win.banner.isVisible()
            assert f"nodewatch agent --collector {empty.url}" in win.banner.text()
        finally:
            win.close()
            empty.close()
