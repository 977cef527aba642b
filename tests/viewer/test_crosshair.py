"""The crosshair (issue 16): one pointer position reads every chart at one time, against a real collector and store.

Five hours of 1-Hz samples, every series changing each minute and a half-hour hole, are written
through the real SQLite engine; the real collector CLI serves them, the real window picks
"6 h" (1-minute buckets), and the pointer is moved over a chart with real mouse events.
Not here: the range picker's requests and failures (``test_history_range.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack
import pytest
from PyQt6.QtCore import QPointF
from pytestqt.qtbot import QtBot

from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from tests.support.messages import facts
from tests.support.swarm import CollectorProcess
from tests.viewer.helpers import start_window
from viewer.charts import Chart
from viewer.crosshair import HINT
from viewer.format import format_rate

if TYPE_CHECKING:  # imported at call time only: pytest-qt picks the Qt binding first
    from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 10_000
NODE = "db-1"
HOLE_AGO_S = (3 * 3600, 3 * 3600 - 1800)  # no samples for half an hour, three hours ago


def values_at(at: float) -> tuple[float, float, float, float, float, float, float]:
    """What every series is at ``at``: each changes once a minute, so a 1-minute bucket's average is exact."""
    minute = int(at // 60)
    return (
        20.0 + minute % 40,  # cpu %
        50.0 + minute % 10,  # memory %
        0.25 * (minute % 8),  # load
        1024.0 * (minute % 16 + 1),  # rx B/s
        2048.0,  # tx B/s
        0.0,  # read B/s
        512.0 * (minute % 4),  # write B/s
    )


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    """The real collector CLI on a data dir holding five hours of ``NODE``, ending two minutes ago."""
    now = math.floor(time.time() / 60) * 60
    engine = SqliteEngine(tmp_path)
    try:
        frame = msgpack.packb(facts().model_dump(mode="python", exclude_none=True))
        row = NodeRow(NODE, "inst-1", frame, 1.0, "online", now - 120, last_seen_at=now - 120)
        times = [now - ago for ago in range(5 * 3600, 120, -1) if not HOLE_AGO_S[1] <= ago < HOLE_AGO_S[0]]
        engine.write([Sample(NODE, "inst-1", n, at, values_at(at)) for n, at in enumerate(times, start=1)], [row])
    finally:
        engine.close()
    process = CollectorProcess(data_dir=tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def win(qtbot: QtBot, collector: CollectorProcess) -> MainWindow:
    """A window showing ``NODE`` over "6 h", drawn (qtbot closes it, and so stops its link, at teardown)."""
    window = start_window(qtbot, collector.url, rows=1)
    window.select_node(NODE)
    window.detail.picker.button("6 h").click()
    drawn = window.detail.picker.status
    qtbot.waitUntil(lambda: drawn.text().startswith("6 h · 1 min"), timeout=WAIT_MS)
    return window


def point_at(qtbot: QtBot, chart: Chart, at: float) -> None:
    """Move the real pointer over ``chart`` to the pixel of time ``at``, mid-height."""
    view = chart.plot.getViewBox()
    y_low, y_high = view.viewRange()[1]
    scene = view.mapViewToScene(QPointF(at, (y_low + y_high) / 2))
    qtbot.mouseMove(chart.plot.viewport(), chart.plot.mapFromScene(scene))  # type: ignore[no-untyped-call]
    qtbot.waitUntil(lambda: win_at(chart) is not None, timeout=WAIT_MS)


def win_at(chart: Chart) -> float | None:
    """Where the chart's crosshair line stands (None: hidden)."""
    lines = [item for item in chart.plot.getPlotItem().items if type(item).__name__ == "InfiniteLine"]
    return float(lines[0].value()) if lines and lines[0].isVisible() else None


class TestCrosshair:
    def test_the_pointer_on_one_chart_reads_every_series_at_its_time(self, qtbot: QtBot, win: MainWindow) -> None:
        """Pointing at the memory chart puts a line at that time on all five charts and reads each series there."""
        detail = win.detail
        detail.show_tab("Charts")
        assert detail.readout.text() == HINT
        now = time.time()
        point_at(qtbot, detail.memory_chart, now - 3600 - 30)
        at = detail.crosshair.at
        assert at is not None
        assert abs(at - (now - 3600 - 30)) < 120  # the pixel under the pointer, within a pixel or two of 6 h
        assert detail.crosshair.line_positions() == [at] * 5  # one time on every chart
        cpu, mem, load, rx, tx, _read, write = values_at(at)
        text = detail.readout.text()
        assert f"CPU {cpu:.1f} %" in text
        assert f"Memory {mem:.1f} %" in text
        assert f"Load {load:.2f}" in text
        assert f"↓\u00a0rx {format_rate(rx)}" in text
        assert format_rate(rx).endswith(" KiB/s")  # IEC, as the table
        assert f"↑\u00a0tx {format_rate(tx)}" in text
        assert "read 0 B/s" in text
        assert f"write {format_rate(write)}" in text
        # The tooltip adds each 1-minute bucket's min and max (all one value here), one series a line.
        assert f"CPU {cpu:.1f} %  (min {cpu:.1f} % - max {cpu:.1f} %)" in detail.readout.toolTip()

    def test_the_pointer_in_a_gap_reads_no_data_rather_than_a_neighbour(self, qtbot: QtBot, win: MainWindow) -> None:
        """Over the half hour with no samples, every series reads "no data", not the last value before it."""
        detail = win.detail
        detail.show_tab("Charts")
        hole_mid = time.time() - (HOLE_AGO_S[0] + HOLE_AGO_S[1]) / 2
        point_at(qtbot, detail.cpu_chart, hole_mid)
        text = detail.readout.text()
        assert text.count("no data") == 7
        assert "%" not in text

    def test_the_lines_hide_when_the_pointer_leaves_the_charts(self, qtbot: QtBot, win: MainWindow) -> None:
        """Moving the pointer from a chart to the table hides every line and brings the hint back."""
        detail = win.detail
        detail.show_tab("Charts")
        point_at(qtbot, detail.cpu_chart, time.time() - 1800)
        qtbot.mouseMove(win.table.viewport())  # type: ignore[no-untyped-call]
        qtbot.waitUntil(lambda: detail.crosshair.at is None, timeout=WAIT_MS)
        assert detail.crosshair.line_positions() == [None] * 5
        assert detail.readout.text() == HINT
