"""Alert messages a collector might get wrong: refused with a close and a log line, never shown, never a crash.

A real loopback subscribe endpoint (``SubscribeServer``) sends the frames; the viewer's real
link and window receive them.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from shared.errors import CloseCode
from tests.support.messages import WALL_T0
from tests.viewer.helpers import start_window
from tests.viewer.subscribe_server import SubscribeServer
from viewer.alertspanel import EMPTY_TEXT, NOT_HEARD_TEXT, AlertColumn
from viewer.window import MainWindow

GOOD_ALERT: dict[str, Any] = {
    "alertname": "cpu_high",
    "node_id": "a",
    "instance": "",
    "severity": "warning",
    "state": "firing",
    "active_since_at": WALL_T0 - 60,
    "fired_at": WALL_T0 - 30,
    "value": 95.0,
    "condition": "cpu_percent > 90",
    "summary": "CPU above 90 %",
}


def alerts_frame(*alerts: dict[str, Any], **fields: Any) -> bytes:
    """An ``alerts`` message holding ``alerts``; ``fields`` replace top-level keys."""
    packed: bytes = msgpack.packb({"type": "alerts", "server_time_at": WALL_T0, "alerts": list(alerts), **fields})
    return packed


@pytest.fixture
def window(qtbot: QtBot, server: SubscribeServer) -> MainWindow:
    """A window connected to ``server`` (nodes a, b and c); qtbot closes it after the test."""
    return start_window(qtbot, server.url, 3)


class TestAlertMessages:
    def test_a_good_message_fills_the_panel(self, qtbot: QtBot, server: SubscribeServer, window: MainWindow) -> None:
        """An ``alerts`` message's firing alert shows; an ``alert`` resolving it empties the panel again."""
        panel = window.parts.alerts
        assert panel.summary_label.text() == NOT_HEARD_TEXT  # this stand-in sent none yet
        server.push_raw(alerts_frame(GOOD_ALERT, {**GOOD_ALERT, "node_id": "b", "state": "pending"}))
        qtbot.waitUntil(lambda: panel.summary_label.text() == "1 firing · 0 unknown", timeout=5000)
        event = {**GOOD_ALERT, "old": "firing", "new": "resolved", "changed_at": WALL_T0, "labels": {}}
        for key in ("state", "fired_at", "condition"):
            event.pop(key)
        server.push_raw(msgpack.packb({"type": "alert", "server_time_at": WALL_T0, "events": [event]}))
        qtbot.waitUntil(lambda: panel.summary_label.text() == EMPTY_TEXT, timeout=5000)

    def test_the_clicked_alert_stays_selected_across_messages(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """A clicked alert stays the selected one while later messages rebuild the panel and move its row."""
        panel = window.parts.alerts
        older = {**GOOD_ALERT, "node_id": "b", "active_since_at": WALL_T0 - 600, "fired_at": WALL_T0 - 500}
        server.push_raw(alerts_frame(GOOD_ALERT, older))
        qtbot.waitUntil(lambda: panel.summary_label.text() == "2 firing · 0 unknown", timeout=5000)
        row = [alert.key.node_id for alert in panel.shown_alerts()].index("a")
        viewport = panel.view.viewport()
        assert viewport is not None
        rect = panel.view.visualRect(panel.model.index(row, AlertColumn.RULE))
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())  # type: ignore[no-untyped-call]
        qtbot.waitUntil(lambda: window.detail.node_id == "a", timeout=5000)
        oldest = {**GOOD_ALERT, "node_id": "c", "active_since_at": WALL_T0 - 900, "fired_at": WALL_T0 - 800}
        server.push_raw(alerts_frame(GOOD_ALERT, older, oldest))  # sorted oldest first: a's row moves down
        qtbot.waitUntil(lambda: panel.summary_label.text() == "3 firing · 0 unknown", timeout=5000)
        assert [alert.key.node_id for alert in panel.shown_alerts()] == ["c", "b", "a"]
        selection = panel.view.selectionModel()
        assert selection is not None
        assert [index.row() for index in selection.selectedRows()] == [2]  # a's row, now last

    def test_disconnected_alerts_are_marked_as_of(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """While the collector is gone the panel keeps its alerts but says since when they are old."""
        panel = window.parts.alerts
        server.push_raw(alerts_frame(GOOD_ALERT))
        qtbot.waitUntil(lambda: panel.summary_label.text() == "1 firing · 0 unknown", timeout=5000)
        server.stop()
        qtbot.waitUntil(lambda: "as of" in panel.summary_label.text(), timeout=5000)
        assert panel.summary_label.text().startswith("1 firing · 0 unknown · as of ")
        assert panel.summary_label.text().endswith("(disconnected)")
        server.start()
        qtbot.waitUntil(lambda: panel.summary_label.text() == NOT_HEARD_TEXT, timeout=5000)  # a new connection

    @pytest.mark.parametrize(
        ("frame", "words"),
        [
            (alerts_frame({**GOOD_ALERT, "alertname": "<b>x</b>"}), "alertname"),
            (alerts_frame({**GOOD_ALERT, "state": "exploded"}), "state"),
            (alerts_frame({**GOOD_ALERT, "node_id": "-bad"}), "node_id"),
            (alerts_frame({**GOOD_ALERT, "summary": "x" * 5000}), "summary"),
            (alerts_frame(alerts={"not": "a list"}), "alerts"),
            (alerts_frame(server_time_at="noon"), "server_time_at"),
            (msgpack.packb({"type": "alert", "server_time_at": WALL_T0, "events": [GOOD_ALERT]}), "old"),
        ],
    )
    def test_bad_alert_messages_are_refused(
        self,
        qtbot: QtBot,
        server: SubscribeServer,
        window: MainWindow,
        *,
        caplog: pytest.LogCaptureFixture,
        frame: bytes,
        words: str,
    ) -> None:
        """A malformed alert message closes the connection as a policy violation, logs the field, shows nothing."""
        with caplog.at_level(logging.WARNING, logger="viewer.link"):
            server.push_raw(frame)
            qtbot.waitUntil(lambda: bool(server.client_close_codes), timeout=5000)
        assert server.client_close_codes[0] == CloseCode.POLICY_VIOLATION
        assert any("schema" in record.getMessage() and words in record.getMessage() for record in caplog.records)
        assert window.parts.alerts.model.rowCount() == 0

    def test_other_unknown_types_are_still_refused(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A message type neither the codec nor the alert reader knows is refused as an unknown type."""
        with caplog.at_level(logging.WARNING, logger="viewer.link"):
            server.push_raw(msgpack.packb({"type": "gossip", "server_time_at": WALL_T0}))
            qtbot.waitUntil(lambda: bool(server.client_close_codes), timeout=5000)
        assert any("unknown_type" in record.getMessage() for record in caplog.records)
