"""``OverviewCharts``: the detail pane's first tab: CPU, memory, load, network and disk I/O over time.

The charts fill at once from history (the snapshot's recent points, then the full
``NodeHistory`` the window requests), and then extend by one point per new sample;
``viewer.charts`` breaks them at gaps and shades outages. Time axes are linked to the CPU chart.
A picked history range (``set_range``, a ``viewer.historyload.RangeDrawing``) replaces the
curves with its averages, min-max bands for rollup tiers, its gaps broken and shaded, and
frames the whole range; live samples keep appending at its end, sliding the frame with them.

Not here: facts, tables or which node is selected (``viewer.detail``). UI thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from PyQt6.QtGui import QPalette
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from shared.messages import Heartbeat, History
from viewer.charts import GAP_INTERVALS, Band, Chart, Series, gap_mask, gap_spans
from viewer.historyload import RangeDrawing

# Our own markup (constants), not peer text: each legend lives in its title so it never covers data.
_NET_TITLE: Final = "Network <span style='color:#2ca02c'>↓ rx</span> <span style='color:#d62728'>↑ tx</span>"
_DISK_TITLE: Final = "Disk I/O <span style='color:#1f77b4'>read</span> <span style='color:#ff7f0e'>write</span>"


@dataclass(frozen=True, slots=True)
class _Curve:
    """One series, its min-max band, the history column and heartbeat field it reads, and its chart."""

    series: Series
    band: Band
    column: str
    chart: Chart

    def value(self, sample: Heartbeat) -> float | None:
        if self.column == "load_1":
            return None if sample.load_avg is None else sample.load_avg[0]
        value = getattr(sample, self.column)
        return None if value is None else float(value)


class OverviewCharts(QWidget):
    """Five linked charts of one node; ``reset``, ``set_history``, ``extend`` and ``shade`` drive them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cpu_chart = Chart("CPU %", percent=True)
        self.memory_chart = Chart("Memory %", percent=True, link_to=self.cpu_chart)
        self.load_chart = Chart("Load (1 min)", percent=False, rate=False, link_to=self.cpu_chart)
        self.net_chart = Chart(_NET_TITLE, percent=False, link_to=self.cpu_chart)
        self.disk_chart = Chart(_DISK_TITLE, percent=False, link_to=self.cpu_chart)
        self.charts = (self.cpu_chart, self.memory_chart, self.load_chart, self.net_chart, self.disk_chart)
        self._curves = tuple(
            _Curve(chart.add_series(colour), chart.add_band(colour), column, chart)
            for chart, colour, column in (
                (self.cpu_chart, "#1f77b4", "cpu_percent"),
                (self.memory_chart, "#9467bd", "mem_percent"),
                (self.load_chart, "#8c564b", "load_1"),
                (self.net_chart, "#2ca02c", "net_rx_bytes_per_s"),
                (self.net_chart, "#d62728", "net_tx_bytes_per_s"),
                (self.disk_chart, "#1f77b4", "disk_read_bytes_per_s"),
                (self.disk_chart, "#ff7f0e", "disk_write_bytes_per_s"),
            )
        )
        self.last_sampled_at: float | None = None
        self._last_seq: int | None = None
        self._interval_s = 1.0
        # What counts as a gap before the next live point: a range's step, then the node's interval.
        self._gap_spacing_s = 1.0
        self._window_s: float | None = None  # a picked range's span: live points slide the frame
        self._step_s = 1.0  # how far a point's value reaches, for the crosshair
        self._gaps: list[tuple[float, float]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for chart in self.charts[:-1]:
            # One time scale under the stack (the axes are linked): more room for data, and four
            # fewer date axes to lay out and draw on every live point (bench/viewer_stall max stall).
            chart.plot.getAxis("bottom").setStyle(showValues=False)
        for chart in self.charts:
            layout.addWidget(chart.plot, stretch=1)

    def points(self) -> int:
        """How many points the CPU chart holds."""
        return int(self._curves[0].series.x.size)

    def reset(self, now_at: float, interval_s: float) -> None:
        """Empty every chart and frame the last minutes before ``now_at``."""
        self.last_sampled_at = None
        self._last_seq = None
        self._interval_s = self._gap_spacing_s = self._step_s = interval_s
        self._window_s = None
        self._gaps = []
        empty = np.empty(0)
        for curve in self._curves:
            curve.series.replace(empty, [], np.zeros(0, dtype=bool))
            curve.band.clear()
        for chart in self.charts:
            chart.shade([])
            chart.show_recent(now_at)

    def set_history(self, history: History) -> None:
        """Replace every curve with ``history``."""
        x = np.asarray(history.sampled_at, dtype=float)
        gaps = gap_mask(history.seq, x, self._interval_s)
        for curve in self._curves:
            curve.series.replace(x, getattr(history, curve.column), gaps)
        self.last_sampled_at = float(x[-1]) if x.size else None
        self._last_seq = history.seq[-1] if history.seq else None
        self._gaps = gap_spans(x, gaps)
        for chart in self.charts:  # x axes are linked; rate and load charts rescale their y axis too
            chart.follow_data()
        self.shade()

    def set_range(self, drawing: RangeDrawing, interval_s: float) -> None:
        """Replace every curve with a picked range's answer and frame the whole range."""
        x = drawing.x
        for curve in self._curves:
            curve.series.replace(x, drawing.avg[curve.column], drawing.breaks)
            if drawing.low is not None and drawing.high is not None:
                curve.band.replace(x, drawing.low[curve.column], drawing.high[curve.column], drawing.breaks)
            else:
                curve.band.clear()
        self._interval_s = interval_s
        self._step_s = max(interval_s, drawing.step_s)
        self._gap_spacing_s = self._step_s
        self._window_s = drawing.to_at - drawing.from_at
        self.last_sampled_at = float(x[-1]) if x.size else None
        self._last_seq = None
        self._gaps = list(drawing.gaps)  # every stretch the store has no samples for, the trailing one too
        for chart in self.charts:
            chart.follow_data(time=False)
        # The leader only: the others follow through the link (framing each would re-align them by pixels).
        self.cpu_chart.show_span(drawing.from_at, drawing.to_at)
        self.shade()

    def extend(self, sample: Heartbeat) -> None:
        """Append one live sample if newer than the last point; a seq or time jump breaks the curves."""
        last_at, last_seq = self.last_sampled_at, self._last_seq
        if last_at is not None and sample.sampled_at <= last_at:
            return
        after_gap = last_at is not None and (
            sample.sampled_at - last_at > GAP_INTERVALS * self._gap_spacing_s
            or (last_seq is not None and sample.seq > last_seq + 1)
        )
        if after_gap and last_at is not None:
            self._gaps.append((last_at, sample.sampled_at))
        self.last_sampled_at, self._last_seq = sample.sampled_at, sample.seq
        self._gap_spacing_s = self._interval_s  # from the first live point on, points are an interval apart
        for curve in self._curves:
            curve.series.append(sample.sampled_at, curve.value(sample), after_gap=after_gap)
        if self._window_s is not None:
            high = self.cpu_chart.plot.getViewBox().viewRange()[0][1]
            if sample.sampled_at > high:  # the range ends now: slide it along with the live points
                self.cpu_chart.show_span(sample.sampled_at - self._window_s, sample.sampled_at)
        if last_at is None:
            for chart in self.charts:
                chart.follow_data(time=self._window_s is None)
        if after_gap:
            self.shade()

    def values_at(self, at: float) -> list[tuple[str, float | None, tuple[float, float] | None]]:
        """Each series' value at time ``at`` (None: no sample there), with its min-max where a band is drawn."""
        reach_s = max(self._step_s, GAP_INTERVALS * self._interval_s)
        out = []
        for curve in self._curves:
            value = curve.series.value_at(at, reach_s)
            low, high = curve.band.low.value_at(at, reach_s), curve.band.high.value_at(at, reach_s)
            out.append((curve.column, value, None if low is None or high is None else (low, high)))
        return out

    def shade(self, outage_until: float | None = None) -> None:
        """Shade the gaps, and the stretch from the last sample to ``outage_until`` (stale or offline)."""
        spans = list(self._gaps)
        if outage_until is not None and self.last_sampled_at is not None and outage_until > self.last_sampled_at:
            spans.append((self.last_sampled_at, outage_until))
        for chart in self.charts:
            chart.shade(spans)

    def apply_palette(self, palette: QPalette) -> None:
        """Draw every chart in ``palette``'s colours (dark mode follows the system)."""
        for chart in self.charts:
            chart.apply_palette(palette)
