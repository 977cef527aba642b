"""``Crosshair``: one time read on every chart: a vertical line on all linked charts and a readout of each series.

Moving the pointer over any of the overview's charts puts a line at that time on all five
(their time axes are linked, so one x is one instant everywhere) and fills one readout label
with every series' value there, in the viewer's units (percent, load, IEC byte rates). A
point's value reaches until the next point, or one bucket for rollups; in a gap the readout
says "no data" rather than the nearest value, so an outage is never read as a figure. For a
rollup range the label reads the bucket's average, and its tooltip each series' min and max.
The lines hide when the pointer leaves the charts. The label is plain text (its tooltip escaped).

Not here: drawing the curves (``viewer.overview``), which range is shown. UI thread only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial
from typing import Final

import pyqtgraph as pg
from PyQt6.QtCore import QEvent, QObject, QPointF, Qt
from PyQt6.QtWidgets import QLabel

from viewer.charts import Chart
from viewer.format import format_percent, format_rate, plain_tooltip
from viewer.overview import OverviewCharts

HINT: Final = "Point at a chart to read every series at one time."
NO_DATA: Final = "no data"
_NAMES: Final = {
    "cpu_percent": "CPU",
    "mem_percent": "Memory",
    "load_1": "Load",
    "net_rx_bytes_per_s": "↓\u00a0rx",  # no-break space: the arrow never ends a wrapped line
    "net_tx_bytes_per_s": "↑\u00a0tx",
    "disk_read_bytes_per_s": "read",
    "disk_write_bytes_per_s": "write",
}
_LINE_COLOUR: Final = "#888888"  # mid grey: visible on light and dark backgrounds


def format_value(column: str, value: float | None) -> str:
    """One series' value in the unit its chart uses."""
    if value is None:
        return NO_DATA
    if column.endswith("_percent"):
        return format_percent(value)
    if column == "load_1":
        return f"{value:.2f}"
    return format_rate(value)


Reading = tuple[str, float | None, tuple[float, float] | None]  # column, value, (min, max) of a rollup bucket


def _moment(at: float) -> str:
    return dt.datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def readout_text(at: float, values: Sequence[Reading]) -> str:
    """The readout, one line's worth: the time, then each series as "CPU 12.5 %" (a rollup's average)."""
    parts = [f"{_NAMES.get(column, column)} {format_value(column, value)}" for column, value, _band in values]
    return f"{_moment(at)} · " + " · ".join(parts)


def band_text(at: float, values: Sequence[Reading]) -> str:
    """The readout's tooltip: one series a line, with "min 3.0 % - max 40.0 %" where a rollup has them."""
    lines = [_moment(at)]
    for column, value, band in values:
        line = f"{_NAMES.get(column, column)} {format_value(column, value)}"
        if band is not None and value is not None:
            line += f"  (min {format_value(column, band[0])} - max {format_value(column, band[1])})"
        lines.append(line)
    return "\n".join(lines)


class Crosshair(QObject):
    """Lines at the pointer's time on every chart of ``overview``, and ``readout`` saying what each series is there."""

    def __init__(self, overview: OverviewCharts, readout: QLabel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._overview = overview
        self._readout = readout
        self._at: float | None = None
        self._lines: list[pg.InfiniteLine] = []
        for chart in overview.charts:
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(_LINE_COLOUR, width=1))
            line.setZValue(20)
            line.hide()
            chart.plot.addItem(line, ignoreBounds=True)  # the line never widens the axis
            self._lines.append(line)
            chart.plot.scene().sigMouseMoved.connect(partial(self._on_moved, chart))
            chart.plot.viewport().installEventFilter(self)  # the pointer leaving a chart hides the line
        readout.setText(HINT)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802 - Qt's name
        """Hide the lines when the pointer leaves a chart; never consume the event."""
        if event is not None and event.type() == QEvent.Type.Leave:
            self.hide()
        return super().eventFilter(watched, event)

    @property
    def at(self) -> float | None:
        """The time the lines stand at, or None while hidden."""
        return self._at

    def line_positions(self) -> list[float | None]:
        """Each chart's line position (None where hidden)."""
        return [float(line.value()) if line.isVisible() else None for line in self._lines]

    def show_at(self, at: float) -> None:
        """Put the line at ``at`` on every chart and read every series there."""
        self._at = at
        for line in self._lines:
            line.setValue(at)
            line.show()
        values = self._overview.values_at(at)
        self._readout.setText(readout_text(at, values))
        self._readout.setToolTip(plain_tooltip(band_text(at, values)))

    def hide(self) -> None:
        """No line; the readout shows its hint."""
        self._at = None
        for line in self._lines:
            line.hide()
        self._readout.setText(HINT)
        self._readout.setToolTip("")

    def refresh(self) -> None:
        """Read again at the same time (the data under the line changed: a new range, a live point)."""
        if self._at is not None:
            self.show_at(self._at)

    def _on_moved(self, chart: Chart, pos: QPointF) -> None:
        view = chart.plot.getViewBox()
        if not view.sceneBoundingRect().contains(pos):
            self.hide()
            return
        self.show_at(float(view.mapSceneToView(pos).x()))


def readout_label() -> QLabel:
    """The readout's label: plain text, wrapping, selectable (a figure can be copied)."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    label.setObjectName("crosshair-readout")
    # Three lines' room from the start (a full reading at the pane's default width): the charts
    # below do not jump when the first reading comes, and no line is cut off.
    label.setMinimumHeight(3 * label.fontMetrics().lineSpacing() + 4)
    return label
