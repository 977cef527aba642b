"""Tests of viewer.window offscreen, fed by a real loopback subscribe server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry
from tests.support.messages import WALL_T0, entry, heartbeat, snapshot, status, update
from tests.viewer.helpers import greyed, link_threads, make_link, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.link import LinkState, Phase
from viewer.status import describe_state
from viewer.window import MainWindow


@pytest.fixture
def window(qtbot: QtBot, server: SubscribeServer) -> Iterator[MainWindow]:
    """A shown window following ``server``; closed (and its link stopped) at the end."""
    win = MainWindow(make_link(server.url))
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    qtbot.waitUntil(lambda: win.model.rowCount() == 3 and win.link.state.phase is Phase.CONNECTED, timeout=5000)
    yield win
    win.close()


class TestDescribeState:
    @pytest.mark.parametrize(
        ("state", "text"),
        [
            (LinkState(Phase.CONNECTING), "connecting..."),
            (LinkState(Phase.CONNECTING, retry_at=12.0), "connecting: retry in 2 s"),
            (LinkState(Phase.CONNECTED), "connected"),
            (LinkState(Phase.RECONNECTING, retry_at=13.4), "reconnecting: retry in 4 s"),
            (LinkState(Phase.RECONNECTING), "reconnecting..."),
            (
                LinkState(Phase.AUTH_FAILED, "auth failed: bad token", retry_at=70.0),
                "auth failed: bad token; retrying in 60 s",
            ),
            (LinkState(Phase.STOPPED), "stopped"),
        ],
    )
    def test_indicator_text(self, state: LinkState, text: str) -> None:
        """The indicator says what the link is doing, with a countdown when a retry is scheduled."""
        assert describe_state(state, now_s=10.0) == text


class TestMainWindow:
    def test_table_fills_from_the_snapshot(self, window: MainWindow) -> None:
        """The snapshot's nodes are listed, sorted by node, with counts and 'connected' in the status bar."""
        assert visible_nodes(window) == ["a", "b", "c"]
        assert window.counts_label.text() == "3 nodes · 3 online · 0 stale · 0 offline"
        assert window.connection_label.text() == "● connected"

    def test_live_update_changes_one_row_and_the_counts(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """A node going offline shows in its state cell and in the status bar counts."""
        server.push(update(NodeEntry(status=status("b", "offline", reason="agent_closed"))))
        qtbot.waitUntil(lambda: window.counts_label.text().endswith("1 offline"), timeout=5000)
        row = visible_nodes(window).index("b")
        assert window.proxy.index(row, Column.STATE).data() == "offline"

    def test_filter_box_filters_nodes(self, qtbot: QtBot, window: MainWindow) -> None:
        """Typing in the filter box hides nodes whose id does not match."""
        qtbot.keyClicks(window.filter_box, "B")  # type: ignore[no-untyped-call]
        assert visible_nodes(window) == ["b"]
        window.filter_box.clear()
        assert visible_nodes(window) == ["a", "b", "c"]

    def test_sorting_by_clicking_a_header(self, qtbot: QtBot, server: SubscribeServer, window: MainWindow) -> None:
        """Clicking the CPU header sorts by CPU value, and live updates keep the order right."""
        server.push(update(entry("a", seq=2, cpu=50.0, full=False), entry("c", seq=2, cpu=5.0, full=False)))
        qtbot.waitUntil(lambda: window.model.node("a").sample.cpu_percent == 50.0, timeout=5000)  # type: ignore[union-attr]
        window.table.sortByColumn(Column.CPU, Qt.SortOrder.AscendingOrder)
        assert visible_nodes(window) == ["c", "b", "a"]
        server.push(update(entry("c", seq=3, cpu=99.0, full=False)))
        qtbot.waitUntil(lambda: visible_nodes(window) == ["b", "a", "c"], timeout=5000)

    def test_selection_fills_the_detail_pane_then_extends_live(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """Selecting a node shows its facts and full history at once; a new sample adds one point."""
        assert window.select_node("b")
        assert window.detail.node_id == "b"
        qtbot.waitUntil(lambda: window.detail.chart_points() == 30, timeout=5000)
        assert server.history_requests == ["b"]
        sample = heartbeat(seq=2, cpu=66.0, sampled_at=WALL_T0 + 1)
        server.push(update(NodeEntry(status=status("b", seq=2), last_sample=sample)))
        qtbot.waitUntil(lambda: window.detail.chart_points() == 31, timeout=5000)

    def test_reconnect_greys_out_then_rebuilds_keeping_the_selection(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """Losing the collector greys the table and counts down; after the restart the selection is kept."""
        window.select_node("c")
        qtbot.waitUntil(lambda: server.history_requests == ["c"], timeout=5000)
        server.stop()
        qtbot.waitUntil(lambda: "reconnecting" in window.connection_label.text(), timeout=5000)
        assert greyed(window)
        assert window.proxy.index(0, Column.CPU).data(Qt.ItemDataRole.ForegroundRole) is not None
        server.snapshot = lambda: snapshot("c", "a", "new")
        server.start()
        qtbot.waitUntil(lambda: window.connection_label.text() == "● connected", timeout=5000)
        qtbot.waitUntil(lambda: visible_nodes(window) == ["a", "c", "new"], timeout=5000)
        assert not greyed(window)
        assert window.selected_node_id == "c"
        current = window.table.currentIndex()
        assert current.sibling(current.row(), Column.NODE).data() == "c"
        qtbot.waitUntil(lambda: server.history_requests == ["c", "c"], timeout=5000)

    def test_closing_leaves_no_thread(self, qtbot: QtBot, server: SubscribeServer) -> None:
        """Closing the window stops the network thread within 2 s: no thread is left running."""
        before = set(threading.enumerate())
        win = MainWindow(make_link(server.url))
        qtbot.addWidget(win)
        win.show()
        win.link.start()
        qtbot.waitUntil(lambda: win.model.rowCount() == 3, timeout=5000)
        assert link_threads()
        win.close()
        assert not link_threads()
        assert set(threading.enumerate()) <= before

    def test_selection_comes_back_with_its_node(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """A restarted collector first knows fewer nodes; when the selected node returns, so does the selection."""
        window.select_node("c")
        qtbot.waitUntil(lambda: server.history_requests == ["c"], timeout=5000)
        server.stop()
        server.snapshot = lambda: snapshot("a", "b")
        server.start()
        qtbot.waitUntil(lambda: visible_nodes(window) == ["a", "b"], timeout=5000)
        assert window.selected_node_id == "c"
        server.push(update(entry("c", seq=7, full=True)))
        qtbot.waitUntil(lambda: visible_nodes(window) == ["a", "b", "c"], timeout=5000)
        current = window.table.currentIndex()
        assert current.sibling(current.row(), Column.NODE).data() == "c"
        qtbot.waitUntil(lambda: server.history_requests == ["c", "c"], timeout=5000)
