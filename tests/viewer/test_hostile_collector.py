"""A hostile collector cannot render markup, forge log lines or grow the viewer without bound (issue 13)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from shared.codec import encode
from shared.messages import Error, NodeEntry, Snapshot
from tests.support.messages import WALL_T0, entry, facts, heartbeat, history, snapshot, status, update
from tests.viewer.helpers import HOSTILE_TEXT, batch_of, fast_backoff, rendered_text
from tests.viewer.subscribe_server import SubscribeServer
from viewer.batching import PendingBatch
from viewer.cells import ROW_HISTORY_POINTS, Column
from viewer.link import CollectorLink, LinkConfig, Phase
from viewer.model import NodeTableModel
from viewer.window import MainWindow


def hostile_snapshot() -> Snapshot:
    """One node whose every agent string is markup, and whose state reason is too."""
    node = NodeEntry(
        status=status("evil", "stale", reason=HOSTILE_TEXT),
        facts=facts(HOSTILE_TEXT).model_copy(update={"os": HOSTILE_TEXT, "agent_version": HOSTILE_TEXT}),
        last_sample=heartbeat(),
    )
    return Snapshot(server_time_at=WALL_T0, nodes=[node])


@pytest.fixture
def hostile() -> Iterator[SubscribeServer]:
    """A subscribe server whose only node carries markup in its strings."""
    srv = SubscribeServer(hostile_snapshot)
    srv.start()
    yield srv
    srv.close()


def open_window(qtbot: QtBot, url: str, **config: int) -> MainWindow:
    """A shown, started window on ``url``; ``config`` goes to LinkConfig."""
    link = CollectorLink(LinkConfig(collector_url=url, **config), backoff=fast_backoff())  # type: ignore[arg-type]
    win = MainWindow(link, collector_url=url)
    qtbot.addWidget(win)
    win.show()
    link.start()
    return win


class TestPlainText:
    def test_detail_pane_shows_agent_strings_literally(self, qtbot: QtBot, hostile: SubscribeServer) -> None:
        """A hostname like '<b>X</b><img src=/etc/passwd>' shows as those characters in the pane, never as markup."""
        win = open_window(qtbot, hostile.url)
        try:
            qtbot.waitUntil(lambda: win.model.rowCount() == 1, timeout=5000)
            assert win.select_node("evil")
            for name in ("Hostname", "OS", "Agent", "State"):
                label = win.detail.fact(name)
                assert label.textFormat() is Qt.TextFormat.PlainText, name
                assert HOSTILE_TEXT in label.text(), name
        finally:
            win.close()

    @pytest.mark.parametrize("column", [Column.NODE, Column.STATE])
    def test_table_tooltips_show_agent_strings_literally(
        self, qtbot: QtBot, hostile: SubscribeServer, column: Column
    ) -> None:
        """Hovering the node or state cell shows the hostile hostname or reason as text, not rendered HTML."""
        win = open_window(qtbot, hostile.url)
        try:
            qtbot.waitUntil(lambda: win.model.rowCount() == 1, timeout=5000)
            tip = win.proxy.index(0, column).data(Qt.ItemDataRole.ToolTipRole)
            assert isinstance(tip, str)
            assert HOSTILE_TEXT in rendered_text(tip)
        finally:
            win.close()

    def test_status_labels_are_plain_text(self, qtbot: QtBot, hostile: SubscribeServer) -> None:
        """The banner, counts and connection labels never interpret markup (their words quote the peer)."""
        win = open_window(qtbot, hostile.url)
        try:
            for label in (win.banner, win.counts_label, win.connection_label, win.filter_error):
                assert label.textFormat() is Qt.TextFormat.PlainText
        finally:
            win.close()


class TestLogInjection:
    def test_a_newline_in_a_peer_error_cannot_forge_a_log_line(
        self, qtbot: QtBot, server: SubscribeServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A collector error whose reason and detail hold newlines is logged on one line, quoted."""
        win = open_window(qtbot, server.url)
        try:
            qtbot.waitUntil(lambda: win.link.state.phase is Phase.CONNECTED, timeout=5000)
            forged = "x\n2026-01-01 00:00:00 CRITICAL viewer: FORGED"
            with caplog.at_level(logging.WARNING, logger="viewer.link"):
                server.push_raw(encode(Error(reason=forged[:64], detail=forged)))
                qtbot.waitUntil(lambda: any("FORGED" in r.getMessage() for r in caplog.records), timeout=5000)
            lines = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
            assert lines
            assert all("\n" not in line for line in lines)
        finally:
            win.close()


class TestBounds:
    def test_rows_are_capped_with_a_visible_message(self, qtbot: QtBot, server: SubscribeServer) -> None:
        """Past the row cap, new nodes are refused and the banner says so; the known rows stay."""
        link = CollectorLink(LinkConfig(collector_url=server.url), backoff=fast_backoff())
        win = MainWindow(link, collector_url=server.url, max_rows=4)
        qtbot.addWidget(win)
        win.show()
        link.start()
        try:
            qtbot.waitUntil(lambda: win.model.rowCount() == 3, timeout=5000)
            server.push(update(*(entry(f"n{i}") for i in range(10))))
            qtbot.waitUntil(lambda: win.model.refused_nodes == 9, timeout=5000)
            assert win.model.rowCount() == 4
            assert win.banner.isVisible()
            assert "Row limit reached" in win.banner.text()
        finally:
            win.close()

    def test_pending_batch_is_bounded(self) -> None:
        """While the UI is busy, merged updates hold at most max_nodes nodes; the rest are counted."""
        pending = PendingBatch(max_nodes=2)
        pending.add(update(entry("a"), entry("b"), entry("c")))
        pending.add(update(entry("d"), entry("a", seq=2)))
        batch = pending.take()
        assert batch is not None
        assert sorted(batch.entries) == ["a", "b"]
        assert batch.refused == 2

    def test_model_cap_counts_refusals_until_the_next_snapshot(self) -> None:
        """The model holds at most max_rows rows; a snapshot restarts the refusal count."""
        model = NodeTableModel(max_rows=2)
        model.apply_batch(batch_of(update(entry("a"), entry("b"), entry("c"))), WALL_T0)
        assert model.node_ids() == ["a", "b"]
        assert model.refused_nodes == 1
        model.apply_batch(batch_of(snapshot("a")), WALL_T0)
        assert model.refused_nodes == 0

    def test_row_history_is_bounded(self) -> None:
        """A node sent with a huge history keeps only its recent points in the table (the pane asks for the rest)."""
        model = NodeTableModel()
        big = entry("a").model_copy(update={"history": history(points=5000)})
        model.apply_batch(batch_of(update(big)), WALL_T0)
        row = model.node("a")
        assert row is not None
        assert row.history is not None
        assert len(row.history.seq) == ROW_HISTORY_POINTS
        assert row.history.seq[-1] == 5000

    def test_an_oversized_frame_is_said_in_the_banner(self, qtbot: QtBot, server: SubscribeServer) -> None:
        """A frame over the viewer's limit ends the session with a message in the banner, not a silent retry loop."""
        win = open_window(qtbot, server.url, max_frame_bytes=512)
        try:
            qtbot.waitUntil(lambda: "frame limit" in win.banner.text(), timeout=5000)
            assert win.banner.isVisible()
        finally:
            win.close()
