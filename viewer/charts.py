"""The detail pane's charts: pyqtgraph plots that tell the truth about gaps, in IEC units.

- A curve breaks where samples are missing (a seq jump, or a time gap over a few
  intervals): a NaN point is put in the gap and the curve is drawn with ``connect="finite"``,
  so an outage is never a straight line. Gaps are shaded, and so is the stretch from the
  last sample to now while the node is stale or offline.
- Percent charts are fixed at 0-100; the network axis counts KiB/s, MiB/s (IEC, like the table).
- pyqtgraph's developer context menu and its auto-range "A" button are off; the time axes
  of all charts are linked, so zooming one zooms all.
- A rollup range (1-min or 1-h buckets) draws its average line over a min-max band (``Band``).
- Each series is capped (``MAX_POINTS``): a hostile collector cannot grow it without bound.

Not here: which node is shown or facts (``viewer.detail``). UI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PyQt6.QtGui import QColor, QPalette

from shared.limits import MAX_HISTORY_POINTS
from viewer.format import format_rate

# A full history, plus room for the live points that follow it.
MAX_POINTS: Final = MAX_HISTORY_POINTS + 10_000
# Samples further apart than this many intervals leave a gap: one late tick is jitter, three is an outage.
GAP_INTERVALS: Final = 2.5
# Shaded gaps drawn per chart, newest first: enough for any real outage pattern, bounded for a hostile one.
MAX_SHADED: Final = 50
_SHADE: Final = (255, 160, 0, 45)
_IEC_STEPS: Final = (1.0, 1024.0, 1024.0**2, 1024.0**3, 1024.0**4)
_PEN_WIDTH: Final = 1.5
# The min-max band is a tint of its line's colour: readable under the line, in light and dark mode.
_BAND_ALPHA: Final = 50
FloatArray = npt.NDArray[np.float64]


class RateAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph is untyped
    """A left axis in B/s, KiB/s, MiB/s: ticks on round numbers of one IEC unit."""

    def __init__(self) -> None:
        super().__init__(orientation="left")
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:  # noqa: N802, N803 - pyqtgraph's names
        """pyqtgraph's spacing, computed in the unit the largest value is shown in."""
        largest = max(abs(minVal), abs(maxVal))
        unit = next((step for step in reversed(_IEC_STEPS) if largest >= step), 1.0)
        levels = super().tickSpacing(minVal / unit, maxVal / unit, size)
        return [(spacing * unit, offset * unit) for spacing, offset in levels]

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float) -> list[str]:  # noqa: N802 - pyqtgraph's name
        """Each tick as e.g. '1.5 MiB/s'."""
        return [format_rate(value * scale) if value >= 0 else "" for value in values]


def gap_mask(seq: Sequence[int] | None, x: FloatArray, interval_s: float) -> npt.NDArray[np.bool_]:
    """True at each point that follows a gap: a seq jump, or more than ``GAP_INTERVALS`` intervals of time."""
    gaps = np.zeros(x.size, dtype=bool)
    if x.size < 2:
        return gaps
    gaps[1:] = np.diff(x) > GAP_INTERVALS * interval_s
    if seq is not None and len(seq) == x.size:
        gaps[1:] |= np.diff(np.asarray(seq, dtype=np.int64)) > 1
    return gaps


class Series:
    """x (epoch seconds) and y of one curve; NaN points mark gaps."""

    def __init__(self, curve: pg.PlotDataItem) -> None:
        self.curve = curve
        self.x: FloatArray = np.empty(0)
        self.y: FloatArray = np.empty(0)

    def replace(self, x: FloatArray, y: Sequence[float | None] | FloatArray, gaps: npt.NDArray[np.bool_]) -> None:
        """Show ``x``/``y``, with a NaN point before every point where ``gaps`` is True."""
        self.x, self.y = with_breaks(x, y, gaps)
        self._draw()

    def value_at(self, at: float, reach_s: float) -> float | None:
        """The value of the last point at or before ``at`` if within ``reach_s``; None in a gap or off the data."""
        index = int(np.searchsorted(self.x, at, side="right")) - 1
        if index < 0 or at - self.x[index] > reach_s or np.isnan(self.y[index]):
            return None
        return float(self.y[index])

    def append(self, x: float, y: float | None, *, after_gap: bool) -> None:
        """Add one point; ``after_gap`` breaks the curve before it."""
        if after_gap and self.x.size:
            self.x = np.append(self.x, self.x[-1] + 1e-3)
            self.y = np.append(self.y, np.nan)
        self.x = np.append(self.x, x)
        self.y = np.append(self.y, np.nan if y is None else y)
        self._draw()

    def _draw(self) -> None:
        if self.x.size > MAX_POINTS:
            self.x, self.y = self.x[-MAX_POINTS:], self.y[-MAX_POINTS:]
        self.curve.setData(self.x, self.y, connect="finite")


def with_breaks(
    x: FloatArray, y: Sequence[float | None] | FloatArray, gaps: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """``x``/``y`` with a NaN point before every point where ``gaps`` is True (None values become NaN too)."""
    values = y if isinstance(y, np.ndarray) else np.asarray([np.nan if v is None else v for v in y], dtype=float)
    where = np.flatnonzero(gaps)
    if not where.size:
        return x, values
    # The break point sits just after the last sample before the gap.
    return np.insert(x, where, x[where - 1] + 1e-3), np.insert(values, where, np.nan)


class Band:
    """The min-max band of a rollup series: two invisible curves and the fill between them."""

    def __init__(self, plot: pg.PlotWidget, colour: str) -> None:
        self._low = pg.PlotDataItem(pen=None)
        self._high = pg.PlotDataItem(pen=None)
        fill = QColor(colour)
        fill.setAlpha(_BAND_ALPHA)
        self._fill = pg.FillBetweenItem(self._low, self._high, brush=pg.mkBrush(fill))
        self._fill.setZValue(-5)  # under the average line, over the shaded gaps
        plot.addItem(self._low)
        plot.addItem(self._high)
        plot.addItem(self._fill)
        self.low = Series(self._low)
        self.high = Series(self._high)

    def replace(self, x: FloatArray, low: FloatArray, high: FloatArray, gaps: npt.NDArray[np.bool_]) -> None:
        """Show the band over ``x``, broken where ``gaps`` is True."""
        self.low.replace(x, low, gaps)
        self.high.replace(x, high, gaps)
        self._fill.setVisible(bool(x.size))

    def clear(self) -> None:
        """No band (raw points, or the live window)."""
        empty = np.empty(0)
        self.replace(empty, empty, empty, np.zeros(0, dtype=bool))


class Chart:
    """One plot: its curves, its shaded gaps, and the house settings (no menu, no 'A' button)."""

    def __init__(self, title: str, *, percent: bool, link_to: Chart | None = None, rate: bool = True) -> None:
        axes: dict[str, pg.AxisItem] = {"bottom": pg.DateAxisItem(orientation="bottom")}
        if not percent and rate:  # a load average is a plain number: pyqtgraph's own axis
            axes["left"] = RateAxis()
        self.plot = pg.PlotWidget(axisItems=axes)
        self._title = title
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getAxis("left").setStyle(maxTickLevel=0)  # major ticks only: minor grid lines cost a paint
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setMinimumHeight(90)
        self.plot.setMenuEnabled(False)  # the developer menu (export, transforms, ...) is not for operators
        self.plot.hideButtons()  # the "A" auto-range button changed the axis for every node after it
        if percent:
            self.plot.setYRange(0.0, 100.0, padding=0.0)
            self.plot.setLimits(yMin=0.0, yMax=100.0)
            self.plot.enableAutoRange(axis="y", enable=False)
        else:
            self.plot.enableAutoRange(axis="y")
            self.plot.setLimits(yMin=0.0)
        if link_to is not None:
            self.plot.setXLink(link_to.plot)
        self._shades: list[pg.LinearRegionItem] = []
        self._spans: list[tuple[float, float]] = []
        self._percent = percent
        self._rate = rate
        self._leads_time = link_to is None  # linked charts follow the leader's time axis
        self.apply_palette(self.plot.palette())

    def apply_palette(self, palette: QPalette) -> None:
        """Background, title and axes in ``palette``'s colours: dark mode follows the system, charts included."""
        text = palette.color(QPalette.ColorRole.Text)
        self.plot.setBackground(palette.color(QPalette.ColorRole.Base))
        self.plot.setTitle(self._title, color=text.name(), size="9pt")
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(text)
            axis.setTextPen(text)

    @property
    def background(self) -> QColor:
        """The plot's background colour now."""
        return QColor(self.plot.backgroundBrush().color())

    @property
    def percent_range(self) -> tuple[float, float]:
        """The y axis range shown."""
        low, high = self.plot.getViewBox().viewRange()[1]
        return float(low), float(high)

    def add_series(self, colour: str) -> Series:
        """A new curve in ``colour``."""
        return Series(self.plot.plot(pen=pg.mkPen(colour, width=_PEN_WIDTH)))

    def add_band(self, colour: str) -> Band:
        """A new min-max band tinted ``colour`` (empty until a rollup range is drawn)."""
        return Band(self.plot, colour)

    def shade(self, spans: Sequence[tuple[float, float]]) -> None:
        """Shade ``spans`` (start, end epoch seconds): gaps and the current outage; at most ``MAX_SHADED``."""
        spans = list(spans)[-MAX_SHADED:]
        if spans == self._spans:
            return  # called on every batch and tick: an unchanged shade is no reason to repaint
        self._spans = spans
        while len(self._shades) < len(spans):
            region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(_SHADE), pen=pg.mkPen(None))
            region.setZValue(-10)
            self.plot.addItem(region)
            self._shades.append(region)
        for index, region in enumerate(self._shades):
            if index < len(spans):
                region.setRegion(spans[index])
                region.show()
            else:
                region.hide()

    def shaded_spans(self) -> list[tuple[float, float]]:
        """The spans shaded now."""
        return [tuple(region.getRegion()) for region in self._shades if region.isVisible()]

    def show_recent(self, now_at: float, span_s: float = 300.0) -> None:
        """Frame the last ``span_s`` seconds (an empty chart shows a readable time axis, not '00.250')."""
        self.plot.setXRange(now_at - span_s, now_at, padding=0.0)
        if not self._percent:  # and a readable rate axis until data comes (autoscaled again then)
            self.plot.setYRange(0.0, 1000.0 if self._rate else 1.0, padding=0.0)

    def show_span(self, from_at: float, to_at: float) -> None:
        """Frame ``from_at``..``to_at`` (a picked history range), whatever the data covers."""
        self.plot.enableAutoRange(axis="x", enable=False)
        self.plot.setXRange(from_at, to_at, padding=0.0)

    def follow_data(self, *, time: bool = True) -> None:
        """Fit the axes to the data again (after ``show_recent``): time on the leading chart, rates too."""
        if time and self._leads_time:
            self.plot.enableAutoRange(axis="x")
        if not self._percent:
            self.plot.enableAutoRange(axis="y")


def gap_spans(x: FloatArray, gaps: npt.NDArray[np.bool_]) -> list[tuple[float, float]]:
    """(end of the sample before, start of the sample after) for every gap."""
    where = np.flatnonzero(gaps)
    return [(float(x[index - 1]), float(x[index])) for index in where]
