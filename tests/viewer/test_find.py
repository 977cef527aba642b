"""Finding a node: keyboard shortcuts, the filter language, its inline errors and "N of M shown"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import QItemSelectionModel, Qt
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry, Snapshot
from tests.support.messages import WALL_T0, entry, facts, heartbeat, status, update
from tests.viewer.helpers import make_link, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import NodeRow
from viewer.filtering import FilterError, parse
from viewer.window import MainWindow


def fleet() -> Snapshot:
    """web-1 (hot), web-2, db-1 (full disk is the default sample's /data at 90 %), old (offline)."""
    nodes = [
        entry("web-1", cpu=91.0),
        entry("web-2", cpu=10.0),
        NodeEntry(status=status("db-1"), facts=facts("database.example"), last_sample=heartbeat(cpu=50.0, mem=95.0)),
        NodeEntry(status=status("old", "offline"), last_sample=heartbeat(cpu=99.0)),
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    """A window on a four-node fleet."""
    srv = SubscribeServer(fleet)
    srv.start()
    win = MainWindow(make_link(srv.url), collector_url=srv.url)
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    qtbot.waitUntil(lambda: win.model.rowCount() == 4 and win.model.connected, timeout=5000)
    yield win
    win.close()
    srv.close()


def matching(text: str) -> list[str]:
    """The node ids of ``fleet()`` that ``text`` keeps, sorted."""
    node_filter = parse(text)
    rows = [NodeRow(e.status.node_id, e.status, e.facts, e.last_sample) for e in fleet().nodes]
    return sorted(row.node_id for row in rows if node_filter(row))


class TestFilterLanguage:
    @pytest.mark.parametrize(
        ("text", "nodes"),
        [
            ("", ["db-1", "old", "web-1", "web-2"]),
            ("WEB", ["web-1", "web-2"]),
            ("database", ["db-1"]),  # the hostname counts too
            ("state:offline", ["old"]),
            ("offline", ["old"]),  # a bare state word
            ("cpu>80", ["web-1"]),  # the offline node's old 99 % does not count
            ("cpu>=50 cpu<95", ["db-1", "web-1"]),
            ("mem>90", ["db-1"]),
            ("disk>89", ["db-1", "web-1", "web-2"]),
            ("load<1", ["db-1", "web-1", "web-2"]),
            ("/^web-[2-9]$/", ["web-2"]),
            ("web cpu>50", ["web-1"]),
            ('"web-2"', ["web-2"]),
            ("label:role=web", []),  # no labels on the wire yet
        ],
    )
    def test_terms(self, text: str, nodes: list[str]) -> None:
        """Each kind of term keeps the nodes a person would expect; terms combine with AND."""
        assert matching(text) == nodes

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("state:dead", "expected state:online, state:stale or state:offline"),
            ("cpu>lots", "expected a number after 'cpu>'"),
            ("temp>50", "unknown figure 'temp'"),
            ("/web(/", "bad regular expression"),
            ("/web", "closing /"),
            ("colour:red", "unknown field 'colour:'"),
            ('"open', "closing quote"),
        ],
    )
    def test_errors_say_what_is_wrong(self, text: str, says: str) -> None:
        """A filter that cannot be understood raises FilterError naming the term and what is accepted."""
        with pytest.raises(FilterError) as caught:
            parse(text)
        assert says in str(caught.value)


class TestFindInTheWindow:
    def test_ctrl_f_focuses_the_filter_and_esc_clears_it(self, qtbot: QtBot, window: MainWindow) -> None:
        """Ctrl+F puts the cursor in the filter box; Esc empties it and shows every node again."""
        window.table.setFocus()
        qtbot.keyClick(window.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # type: ignore[no-untyped-call]
        assert window.filter_box.hasFocus()
        qtbot.keyClicks(window.filter_box, "web")  # type: ignore[no-untyped-call]
        assert sorted(visible_nodes(window)) == ["web-1", "web-2"]
        assert window.shown_label.text() == "2 of 4 shown"
        qtbot.keyClick(window.filter_box, Qt.Key.Key_Escape)  # type: ignore[no-untyped-call]
        assert window.filter_box.text() == ""
        assert window.shown_label.text() == "4 of 4 shown"

    def test_a_bad_filter_is_said_inline_and_the_table_is_kept(self, qtbot: QtBot, window: MainWindow) -> None:
        """'state:dead' shows an error under the box; the table keeps its last good filter, never silently empty."""
        window.filter_box.setText("state:dead")
        assert window.filter_error.isVisible()
        assert "state:offline" in window.filter_error.text()
        assert len(visible_nodes(window)) == 4
        window.filter_box.setText("state:offline")
        assert not window.filter_error.isVisible()
        assert visible_nodes(window) == ["old"]

    def test_enter_opens_a_row(self, qtbot: QtBot, window: MainWindow) -> None:
        """Enter in the filter box opens the first match in the detail pane."""
        qtbot.keyClicks(window.filter_box, "db")  # type: ignore[no-untyped-call]
        qtbot.keyClick(window.filter_box, Qt.Key.Key_Return)  # type: ignore[no-untyped-call]
        assert window.selected_node_id == "db-1"
        assert window.detail.node_id == "db-1"

    def test_enter_on_a_table_row_opens_it(self, qtbot: QtBot, window: MainWindow) -> None:
        """With the keyboard cursor on a row (not yet selected), Enter shows that node in the pane."""
        row = visible_nodes(window).index("web-2")
        selection_model = window.table.selectionModel()
        assert selection_model is not None
        selection_model.setCurrentIndex(window.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
        assert window.detail.node_id is None
        window.table.setFocus()
        qtbot.keyClick(window.table, Qt.Key.Key_Return)  # type: ignore[no-untyped-call]
        assert window.selected_node_id == "web-2"
        assert window.detail.node_id == "web-2"

    def test_a_node_filtered_out_leaves_the_pane(self, qtbot: QtBot, window: MainWindow) -> None:
        """Selecting web-1 and then filtering for db empties the pane."""
        assert window.select_node("web-1")
        assert window.detail.node_id == "web-1"
        window.filter_box.setText("db")
        assert window.selected_node_id is None
        assert window.detail.node_id is None

    def test_ctrl_q_closes_the_window(self, qtbot: QtBot, window: MainWindow) -> None:
        """Ctrl+Q quits."""
        qtbot.keyClick(window.table, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # type: ignore[no-untyped-call]
        assert not window.isVisible()


class TestLiveFilter:
    def test_filter_follows_live_figures(self, qtbot: QtBot) -> None:
        """With cpu>80, a node whose CPU rises appears and one whose CPU falls leaves, without retyping."""
        srv = SubscribeServer(fleet)
        srv.start()
        win = MainWindow(make_link(srv.url), collector_url=srv.url)
        qtbot.addWidget(win)
        win.show()
        win.link.start()
        try:
            qtbot.waitUntil(lambda: win.model.rowCount() == 4, timeout=5000)
            win.filter_box.setText("cpu>80")
            assert visible_nodes(win) == ["web-1"]
            srv.push(update(entry("web-2", seq=2, cpu=85.0, full=False), entry("web-1", seq=2, cpu=5.0, full=False)))
            qtbot.waitUntil(lambda: visible_nodes(win) == ["web-2"], timeout=5000)
            assert win.shown_label.text() == "1 of 4 shown"
        finally:
            win.close()
            srv.close()
