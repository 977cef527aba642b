"""End-to-end viewer tests: the real window, a real collector subprocess, real websocket agents."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PyQt6.QtCore import QModelIndex
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from tests.support.swarm import AgentSwarm, CollectorProcess
from tests.viewer.helpers import ARTIFACTS, check_model, greyed, link_threads, make_link
from viewer.cells import Column
from viewer.link import Phase
from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 10_000


@pytest.fixture
def collector() -> Iterator[CollectorProcess]:
    """A running collector CLI on loopback."""
    process = CollectorProcess()
    process.start()
    yield process
    process.stop()


@pytest.fixture
def agents(collector: CollectorProcess) -> Iterator[AgentSwarm]:
    """Three online agents (a long interval keeps them online), each with one heartbeat."""
    swarm = AgentSwarm(collector.url)
    for node_id, cpu in (("alpha", 11.0), ("bravo", 22.0), ("charlie", 33.0)):
        swarm.connect(node_id)
        swarm.beat(node_id, cpu_percent=cpu)
    yield swarm
    swarm.close_all()


def open_window(qtbot: QtBot, url: str, rows: int, token: str | None = None) -> MainWindow:
    """Show a window on ``url`` and wait for ``rows`` rows (0: do not wait)."""
    win = MainWindow(make_link(url, token=token))
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    if rows:
        qtbot.waitUntil(lambda: win.model.rowCount() == rows, timeout=WAIT_MS)
    return win


def cell(win: MainWindow, node_id: str, column: Column) -> object:
    row = win.model.row_of(node_id)
    return None if row is None else win.model.index(row, column).data()


class TestWithRealCollector:
    def test_table_fills_from_the_snapshot(self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess) -> None:
        """Nodes the collector knows are listed with their numbers as soon as the viewer connects."""
        qtbot.waitUntil(lambda: agents.acks.get("charlie") == 1, timeout=WAIT_MS)
        win = open_window(qtbot, collector.url, rows=3)
        try:
            assert sorted(win.model.node_ids()) == ["alpha", "bravo", "charlie"]
            assert cell(win, "bravo", Column.CPU) == "22.0 %"
            assert cell(win, "bravo", Column.STATE) == "online"
            assert cell(win, "bravo", Column.DISK) == "42.0 %"
            qtbot.waitUntil(lambda: win.connection_label.text() == "● connected", timeout=WAIT_MS)
            assert win.counts_label.text() == "3 nodes · 3 online · 0 stale · 0 offline"
        finally:
            win.close()

    def test_one_heartbeat_updates_exactly_one_row(
        self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess
    ) -> None:
        """One heartbeat of one agent changes that node's row and no other, in one dataChanged."""
        win = open_window(qtbot, collector.url, rows=3)
        try:
            qtbot.waitUntil(lambda: cell(win, "charlie", Column.CPU) == "33.0 %", timeout=WAIT_MS)
            qtbot.wait(300)  # let any in-flight update of the setup land first
            changes: list[tuple[int, int, int, int]] = []

            def record(top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
                span = (top_left.row(), bottom_right.row(), top_left.column(), bottom_right.column())
                if span[2:] != (Column.LAST_SEEN, Column.LAST_SEEN):  # the local 1 s "last seen" tick
                    changes.append(span)

            win.model.dataChanged.connect(record)
            agents.beat("bravo", cpu_percent=77.0)
            qtbot.waitUntil(lambda: cell(win, "bravo", Column.CPU) == "77.0 %", timeout=WAIT_MS)
            qtbot.wait(300)
            row = win.model.row_of("bravo")
            assert changes == [(row, row, Column.STATE, Column.LAST_SEEN)]
            assert cell(win, "alpha", Column.CPU) == "11.0 %"
        finally:
            win.close()

    def test_node_goes_stale_then_offline(self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess) -> None:
        """An agent that stops sending (interval 0.1 s) turns stale, then offline, in its state cell."""
        agents.connect("quiet", interval_s=0.1)
        agents.beat("quiet")
        win = open_window(qtbot, collector.url, rows=4)
        try:
            seen: list[object] = []

            def watch() -> bool:
                state = cell(win, "quiet", Column.STATE)
                if not seen or seen[-1] != state:
                    seen.append(state)
                return state == "offline"

            qtbot.waitUntil(watch, timeout=WAIT_MS)
            assert seen[-2:] == ["stale", "offline"]
            assert win.counts_label.text() == "4 nodes · 3 online · 0 stale · 1 offline"
        finally:
            win.close()

    def test_collector_restart_reconnects_keeping_the_selection(
        self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess
    ) -> None:
        """Collector stopped: greyed and 'reconnecting'; restarted: the same rows, online, selection kept."""
        win = open_window(qtbot, collector.url, rows=3)
        try:
            assert win.select_node("charlie")
            qtbot.waitUntil(lambda: win.detail.chart_points() >= 1, timeout=WAIT_MS)
            collector.stop()
            qtbot.waitUntil(lambda: "reconnecting" in win.connection_label.text(), timeout=WAIT_MS)
            assert greyed(win)
            collector.start()
            for node_id in ("alpha", "bravo", "charlie"):  # the agents come back too
                agents.close(node_id)
                agents.connect(node_id)
                agents.beat(node_id, cpu_percent=50.0)
            qtbot.waitUntil(lambda: win.link.state.phase is Phase.CONNECTED, timeout=WAIT_MS)
            qtbot.waitUntil(
                lambda: win.counts_label.text() == "3 nodes · 3 online · 0 stale · 0 offline", timeout=WAIT_MS
            )
            qtbot.waitUntil(lambda: cell(win, "charlie", Column.CPU) == "50.0 %", timeout=WAIT_MS)
            assert not greyed(win)
            assert sorted(win.model.node_ids()) == ["alpha", "bravo", "charlie"]
            assert win.selected_node_id == "charlie"
            current = win.table.currentIndex()
            qtbot.waitUntil(lambda: win.table.currentIndex().isValid(), timeout=WAIT_MS)
            current = win.table.currentIndex()
            assert current.sibling(current.row(), Column.NODE).data() == "charlie"
        finally:
            win.close()

    def test_401_is_auth_failed_without_retry_storm(self, qtbot: QtBot) -> None:
        """A collector that requires a viewer token: 'auth failed' with the reason, one attempt on the server."""
        guarded = CollectorProcess(env={"NODEWATCH_VIEWER_TOKENS": "viewer-secret"})
        guarded.start()
        try:
            win = open_window(qtbot, guarded.url, rows=0)
            try:
                qtbot.waitUntil(lambda: "auth failed" in win.connection_label.text(), timeout=WAIT_MS)
                assert "token" in win.connection_label.text()
                qtbot.wait(1500)  # the fast test backoff would have retried many times by now
                metrics = guarded.get("/metrics", token="viewer-secret")
                assert 'nodewatch_collector_auth_failures_total{endpoint="subscribe"} 1.0' in metrics
            finally:
                win.close()
        finally:
            guarded.stop()

    def test_closing_leaves_no_threads(self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess) -> None:
        """Closing the window while data flows ends the network thread; nothing new is left running."""
        before = set(threading.enumerate())
        win = open_window(qtbot, collector.url, rows=3)
        agents.beat("alpha", cpu_percent=1.0)
        assert link_threads()
        win.close()
        assert not link_threads()
        assert set(threading.enumerate()) <= before

    def test_qtmodeltester_on_live_data(
        self, qtbot: QtBot, qtmodeltester: ModelTester, agents: AgentSwarm, collector: CollectorProcess
    ) -> None:
        """The model keeps Qt's model contract while live rows are added, changed and go offline."""
        win = open_window(qtbot, collector.url, rows=3)
        try:
            check_model(qtmodeltester, win.model)
            agents.connect("delta")
            agents.beat("delta", cpu_percent=44.0)
            agents.beat("alpha", cpu_percent=12.0)
            agents.close("bravo")
            qtbot.waitUntil(lambda: cell(win, "bravo", Column.STATE) == "offline", timeout=WAIT_MS)
            qtbot.waitUntil(lambda: cell(win, "delta", Column.CPU) == "44.0 %", timeout=WAIT_MS)
            check_model(qtmodeltester, win.model)
        finally:
            win.close()

    def test_screenshot(self, qtbot: QtBot, agents: AgentSwarm, collector: CollectorProcess) -> None:
        """Saves tests/artifacts/viewer.png: a few nodes in every state, one selected with its charts."""
        for beat in range(8):
            agents.beat("alpha", cpu_percent=20.0 + 7 * (beat % 4), mem_percent=30.0 + beat)
        agents.connect("delta", interval_s=0.1)
        agents.beat("delta", cpu_percent=5.0)
        agents.close("charlie")
        win = open_window(qtbot, collector.url, rows=4)
        try:
            win.select_node("alpha")
            qtbot.waitUntil(lambda: win.detail.chart_points() == 9, timeout=WAIT_MS)
            qtbot.waitUntil(lambda: cell(win, "delta", Column.STATE) == "stale", timeout=WAIT_MS)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            path = ARTIFACTS / "viewer.png"
            assert win.grab().save(str(path))
            assert path.stat().st_size > 10_000
        finally:
            win.close()
