"""The detail pane's history range picker (issue 16) against a real collector with a real SQLite store.

The store is filled beforehand through the real engine (``SqliteEngine.write``) with 22 hours of
1-Hz samples of two nodes, ending ten minutes ago, with an hour-long hole in the middle; then the
real collector CLI opens that data dir on loopback, and the real window picks ranges over the
real websocket. Not here: the crosshair (``test_crosshair.py``), tier choice (tests/collector/).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack
import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from shared.messages import HistoryRequest
from tests.support.messages import facts
from tests.support.swarm import AgentSwarm, CollectorProcess
from tests.viewer.helpers import start_window
from viewer.link import Phase

if TYPE_CHECKING:  # imported at call time only: pytest-qt picks the Qt binding first
    from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 10_000
NODES = ("web-1", "web-2")
SPAN_S = 22 * 3600  # stored: 22 h of 1-Hz samples ...
END_AGO_S = 600  # ... ending ten minutes ago
HOLE_AGO_S = (10 * 3600, 9 * 3600)  # ... without the hour from 10 h to 9 h ago


def cpu_at(at: float, node_index: int) -> float:
    """The stored CPU of a sample: constant within each minute, so a 1-minute bucket's average is exact."""
    return float(10 + node_index * 5 + int(at // 60) % 50)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, float]:
    """A data dir with both nodes' registry rows and samples, and the minute-aligned "now" they count back from."""
    now = math.floor(time.time() / 60) * 60
    engine = SqliteEngine(tmp_path)
    try:
        frame = msgpack.packb(facts().model_dump(mode="python", exclude_none=True))
        for index, node_id in enumerate(NODES):
            row = NodeRow(node_id, "inst-1", frame, 1.0, "online", now - END_AGO_S, last_seen_at=now - END_AGO_S)
            times = [now - ago for ago in range(SPAN_S, END_AGO_S, -1) if not HOLE_AGO_S[1] <= ago < HOLE_AGO_S[0]]
            samples = [
                Sample(node_id, "inst-1", seq, at, (cpu_at(at, index), 55.5, 0.5, 1536.0, 2048.0, 0.0, 4096.0))
                for seq, at in enumerate(times, start=1)
            ]
            engine.write(samples, [row])
    finally:
        engine.close()
    return tmp_path, float(now)


@pytest.fixture
def collector(stored: tuple[Path, float]) -> Iterator[CollectorProcess]:
    """The real collector CLI on loopback with the filled store as its data dir."""
    process = CollectorProcess(data_dir=stored[0])
    process.start()
    yield process
    process.stop()


@pytest.fixture
def at_24_h(qtbot: QtBot, collector: CollectorProcess) -> Iterator[MainWindow]:
    """A window on the collector showing web-1 with "24 h" picked and drawn."""
    win = start_window(qtbot, collector.url, rows=2)
    try:
        win.select_node("web-1")
        win.detail.picker.button("24 h").click()
        qtbot.waitUntil(lambda: status(win).startswith("24 h · 1 min"), timeout=WAIT_MS)
        yield win
    finally:
        win.close()


def finite_points(win: MainWindow) -> tuple[np.ndarray, np.ndarray]:
    """The CPU curve's drawn points, break markers (NaN) left out."""
    series = win.detail.overview._curves[0].series
    keep = ~np.isnan(series.y)
    return series.x[keep], series.y[keep]


def status(win: MainWindow) -> str:
    """What the range status line says."""
    return str(win.detail.picker.status.text())


class TestRangePicker:
    def test_picking_24_h_sends_a_ranged_request_and_draws_the_minute_buckets(
        self, qtbot: QtBot, collector: CollectorProcess, stored: tuple[Path, float]
    ) -> None:
        """Clicking "24 h" asks the collector for one day at 1-minute steps and draws its buckets' averages."""
        now = stored[1]
        win = start_window(qtbot, collector.url, rows=2)
        try:
            win.select_node("web-1")
            qtbot.waitUntil(lambda: win.detail.node_id == "web-1", timeout=WAIT_MS)
            with qtbot.waitSignal(win.detail.history_requested, timeout=WAIT_MS) as sent:
                win.detail.picker.button("24 h").click()
            request = sent.args[0]
            assert isinstance(request, HistoryRequest)
            assert request.ranged
            assert (request.node_id, request.step_s) == ("web-1", 60.0)
            assert request.to_at is not None
            assert request.from_at is not None
            assert request.to_at - request.from_at == 86400.0
            assert "loading 24 h of web-1" in status(win)
            qtbot.waitUntil(lambda: status(win).startswith("24 h · 1 min averages of the 1m tier"), timeout=WAIT_MS)
            x, y = finite_points(win)
            minutes = (SPAN_S - END_AGO_S - (HOLE_AGO_S[0] - HOLE_AGO_S[1])) // 60
            assert abs(x.size - minutes) <= 2  # each stored stretch may straddle one more bucket
            assert list(y[5:10]) == [cpu_at(at, 0) for at in x[5:10]]  # the buckets' averages, drawn at their starts
            low, high = win.detail.cpu_chart.plot.getViewBox().viewRange()[0]
            assert high - low == pytest.approx(86400.0, abs=120.0)  # the whole day is framed, not just the data
            assert now - 86400 - 120 < low
            shaded = win.detail.cpu_chart.shaded_spans()
            assert any(lo <= now - END_AGO_S + 60 and hi >= now for lo, hi in shaded)  # nothing stored since: shaded
        finally:
            win.close()

    def test_an_hour_missing_from_the_store_breaks_the_line_and_is_shaded(
        self, at_24_h: MainWindow, stored: tuple[Path, float]
    ) -> None:
        """The hour with no stored samples is a break in every curve and a shaded span, never a straight line."""
        now, win = stored[1], at_24_h
        hole_from, hole_to = now - HOLE_AGO_S[0], now - HOLE_AGO_S[1]
        for curve in win.detail.overview._curves:
            series = curve.series
            inside = (series.x > hole_from + 60) & (series.x < hole_to - 60)
            assert not inside.any()  # no point drawn inside the hole
            across = (series.x >= hole_from) & (series.x < hole_to)  # the last bucket before, and the break after it
            assert np.isnan(series.y[across]).any()
        assert "gap" in status(win)
        shaded = win.detail.cpu_chart.shaded_spans()
        assert any(lo <= hole_from + 60 and hole_to - 60 <= hi for lo, hi in shaded)

    def test_the_range_stays_picked_for_the_next_node_and_is_asked_for_it(
        self, qtbot: QtBot, at_24_h: MainWindow
    ) -> None:
        """With "24 h" picked, selecting another node asks its 24 h and draws it; the button stays checked."""
        win = at_24_h
        with qtbot.waitSignal(win.detail.history_requested, timeout=WAIT_MS) as sent:
            win.select_node("web-2")
        assert sent.args[0].node_id == "web-2"
        assert sent.args[0].step_s == 60.0
        qtbot.waitUntil(lambda: status(win).startswith("24 h · 1 min"), timeout=WAIT_MS)
        x, y = finite_points(win)
        assert list(y[5:8]) == [cpu_at(at, 1) for at in x[5:8]]  # web-2's figures, not web-1's
        assert win.detail.picker.button("24 h").isChecked()

    def test_a_range_picked_while_the_collector_is_down_says_why_and_loads_once_it_is_back(
        self, qtbot: QtBot, collector: CollectorProcess
    ) -> None:
        """With the collector stopped, "24 h" says it is not loaded and why; it loads once the collector is back."""
        win = start_window(qtbot, collector.url, rows=2)
        try:
            win.select_node("web-1")
            qtbot.waitUntil(lambda: win.detail.node_id == "web-1", timeout=WAIT_MS)
            collector.stop()
            qtbot.waitUntil(lambda: win.link.state.phase is not Phase.CONNECTED, timeout=WAIT_MS)
            win.detail.picker.button("24 h").click()
            qtbot.waitUntil(lambda: "24 h not loaded: not connected to the collector" in status(win), timeout=WAIT_MS)
            qtbot.waitUntil(lambda: "refused" in status(win) or "lost" in status(win), timeout=WAIT_MS)
            collector.start()
            qtbot.waitUntil(lambda: status(win).startswith("24 h · 1 min"), timeout=WAIT_MS * 2)
        finally:
            win.close()

    def test_live_samples_keep_appending_at_the_end_of_a_picked_range(
        self, qtbot: QtBot, at_24_h: MainWindow, collector: CollectorProcess
    ) -> None:
        """With "24 h" drawn, the next heartbeat is added at the right edge, after a break for the silent minutes."""
        win, swarm = at_24_h, AgentSwarm(collector.url)
        try:
            # The restored node counts as online until its silence is judged; a new instance may take it then.
            qtbot.waitUntil(
                lambda: (row := win.model.node("web-1")) is not None and row.status.state == "offline", timeout=30_000
            )
            swarm.connect("web-1")
            swarm.beat("web-1", cpu_percent=77.0)
            qtbot.waitUntil(lambda: finite_points(win)[1][-1] == 77.0, timeout=WAIT_MS)
            x = finite_points(win)[0]
            assert x[-1] == pytest.approx(time.time(), abs=30.0)
            series = win.detail.overview._curves[0].series
            assert np.isnan(series.y[-2])  # ten minutes without samples before it: a break, not a ramp
            low, high = win.detail.cpu_chart.plot.getViewBox().viewRange()[0]
            assert high >= x[-1]
            assert high - low == pytest.approx(86400.0, abs=120.0)  # still one day, now ending at the new point
        finally:
            swarm.close_all()

    def test_back_to_15_min_shows_the_live_window_again(self, qtbot: QtBot, at_24_h: MainWindow) -> None:
        """After "24 h", "15 min" asks for the in-memory window (no range) and frames the recent minutes."""
        win = at_24_h
        with qtbot.waitSignal(win.detail.history_requested, timeout=WAIT_MS) as sent:
            win.detail.picker.button("15 min").click()
        assert not sent.args[0].ranged
        assert status(win).startswith("15 min · live")
        low, high = win.detail.cpu_chart.plot.getViewBox().viewRange()[0]
        assert high - low < 3600.0
