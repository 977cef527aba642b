"""The alerts panel, fed by a real collector with a real rule file and real agents, one of them killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.support.processes import CollectorProc, ProcessGroup, Spawned
from tests.viewer.helpers import HOSTILE_TEXT, rendered_text, start_window
from viewer.alertspanel import EMPTY_TEXT, AlertColumn
from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 20_000
INTERVAL = "0.2"  # offline ten intervals (2 s) after the kill
RULES = f"""
[[alerts.rule]]
name = "always_busy"
condition = "cpu_percent >= 0"
summary = '''{HOSTILE_TEXT}'''
"""


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes killed at the end of the test."""
    procs = ProcessGroup(tmp_path)
    yield procs
    procs.close()


def collector_with(group: ProcessGroup, tmp_path: Path, rules: str) -> CollectorProc:
    """A real collector CLI reading ``rules`` as its --alerts-config."""
    path = tmp_path / "collector.toml"
    path.write_text(rules, encoding="utf-8")
    return group.collector("--alerts-config", str(path), "--log-level", "WARNING")


def agent(group: ProcessGroup, collector: CollectorProc, node_id: str, tmp_path: Path) -> Spawned:
    """A real ``nodewatch agent`` process pushing every 0.2 s."""
    state_dir = tmp_path / f"state-{node_id}"
    return group.agent(collector.url, node_id, "--interval", INTERVAL, "--state-dir", str(state_dir))


def rows(win: MainWindow) -> list[tuple[str, str, str]]:
    """The panel's (rule, node, state) rows, top to bottom."""
    return [(a.key.alertname, a.key.node_id, a.state) for a in win.parts.alerts.shown_alerts()]


class TestAlertsPanel:
    def test_firing_and_unknown_alerts_from_a_killed_agent(
        self, qtbot: QtBot, group: ProcessGroup, tmp_path: Path
    ) -> None:
        """A killed agent's node shows node_offline firing and its metric alert unknown; a live one's stays firing."""
        collector = collector_with(group, tmp_path, RULES)
        doomed = agent(group, collector, "web-1", tmp_path)
        agent(group, collector, "db-1", tmp_path)
        win = start_window(qtbot, collector.url, 2)
        panel = win.parts.alerts
        qtbot.waitUntil(lambda: len(rows(win)) == 2, timeout=WAIT_MS)
        assert sorted(rows(win)) == [("always_busy", "db-1", "firing"), ("always_busy", "web-1", "firing")]
        assert panel.summary_label.text() == "2 firing · 0 unknown"

        doomed.kill()
        expected = [("node_offline", "web-1", "firing"), ("always_busy", "db-1", "firing")]
        qtbot.waitUntil(lambda: sorted(rows(win)[:2]) == sorted(expected), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: ("always_busy", "web-1", "unknown") in rows(win), timeout=WAIT_MS)
        assert [state for _rule, _node, state in rows(win)] == ["firing", "firing", "unknown"]  # firing first
        assert panel.summary_label.text() == "2 firing · 1 unknown"
        model = panel.model
        unknown_row = rows(win).index(("always_busy", "web-1", "unknown"))
        assert model.index(unknown_row, AlertColumn.STATE).data() == "unknown (node silent)"
        assert model.index(unknown_row, AlertColumn.SINCE).data().count(":") == 2  # HH:MM:SS
        win.close()

    def test_clicking_an_alert_selects_its_node_and_opens_the_detail(
        self, qtbot: QtBot, group: ProcessGroup, tmp_path: Path
    ) -> None:
        """A click on an alert row selects that node's row in the table and shows it in the detail pane."""
        collector = collector_with(group, tmp_path, RULES)
        agent(group, collector, "web-1", tmp_path)
        agent(group, collector, "db-1", tmp_path)
        win = start_window(qtbot, collector.url, 2)
        panel = win.parts.alerts
        qtbot.waitUntil(lambda: len(rows(win)) == 2, timeout=WAIT_MS)
        for row, (_rule, node_id, _state) in enumerate(rows(win)):
            view = panel.view
            rect = view.visualRect(panel.model.index(row, AlertColumn.NODE))
            viewport = view.viewport()
            assert viewport is not None
            qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())  # type: ignore[no-untyped-call]
            assert win.selected_node_id == node_id
            assert win.table.currentIndex().siblingAtColumn(0).data() == node_id
        win.filter_box.setText("state:offline")  # hides both nodes
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())  # type: ignore[no-untyped-call]
        assert panel.summary_label.text() == f"{node_id} is hidden by the filter"
        win.close()

    def test_no_alerts_says_so(self, qtbot: QtBot, group: ProcessGroup, tmp_path: Path) -> None:
        """With nothing firing, the panel says "no alerts firing" rather than showing an empty table."""
        collector = collector_with(group, tmp_path, "[alerts.builtin.clock_skew]\nenabled = false\n")
        agent(group, collector, "web-1", tmp_path)
        win = start_window(qtbot, collector.url, 1)
        qtbot.waitUntil(lambda: win.parts.alerts.summary_label.text() == EMPTY_TEXT, timeout=WAIT_MS)
        assert win.parts.alerts.model.rowCount() == 0
        win.close()

    def test_summary_is_plain_text(self, qtbot: QtBot, group: ProcessGroup, tmp_path: Path) -> None:
        """A summary holding markup is shown literally, in the cell and in its tooltip."""
        collector = collector_with(group, tmp_path, RULES)
        agent(group, collector, "web-1", tmp_path)
        win = start_window(qtbot, collector.url, 1)
        model = win.parts.alerts.model
        qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=WAIT_MS)
        index = model.index(0, AlertColumn.SUMMARY)
        assert index.data() == HOSTILE_TEXT
        assert rendered_text(index.data(Qt.ItemDataRole.ToolTipRole)) == HOSTILE_TEXT
        win.close()
