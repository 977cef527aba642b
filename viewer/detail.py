"""``DetailPane``: the selected node's static facts and live pyqtgraph charts (CPU, memory, network).

The charts fill at once from history (the snapshot's recent points, then the full
``NodeHistory`` the window requests), and then extend by one point per new sample.
pyqtgraph draws with QPainter on plain QGraphicsView items, so it works offscreen and
adds no OpenGL dependency; ``setClipToView``/auto-downsampling keep a 24 h history
(86,400 points) cheap to repaint.

Not here: networking or the table; the window calls ``show_node``, ``set_history``
and ``extend``. UI thread only.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from shared.messages import Heartbeat, History
from viewer.format import format_bytes, format_duration
from viewer.model import NodeRow

# (title, unit, y range or None for auto)
_CHART_CPU: Final = "CPU %"
_CHART_MEMORY: Final = "Memory %"
_CHART_NET: Final = "Network"
_PEN_WIDTH: Final = 1.5

_FACT_LABELS: Final = (
    "Node",
    "State",
    "Hostname",
    "OS",
    "Platform",
    "CPUs",
    "Memory",
    "Booted",
    "Uptime",
    "Agent",
    "Interval",
    "Clock skew",
    "Samples lost",
)


class _Series:
    """x (epoch seconds) and y columns of one curve, as float arrays; NaN is a gap."""

    def __init__(self, curve: pg.PlotDataItem) -> None:
        self.curve = curve
        self.x = np.empty(0)
        self.y = np.empty(0)

    def replace(self, x: list[float], y: list[float | None]) -> None:
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray([np.nan if value is None else value for value in y], dtype=float)
        self.curve.setData(self.x, self.y)

    def append(self, x: float, y: float | None) -> None:
        self.x = np.append(self.x, x)
        self.y = np.append(self.y, np.nan if y is None else y)
        self.curve.setData(self.x, self.y)


class DetailPane(QWidget):
    """Facts and charts of one node; empty until a node is selected."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node_id: str | None = None
        self._last_sampled_at: float | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        facts_box = QGroupBox("Node")
        form = QFormLayout(facts_box)
        self._facts: dict[str, QLabel] = {}
        for name in _FACT_LABELS:
            label = QLabel("")
            label.setObjectName(f"fact-{name.lower().replace(' ', '-')}")
            form.addRow(name + ":", label)
            self._facts[name] = label
        layout.addWidget(facts_box)

        self._placeholder = QLabel("Select a node to see its history.")
        layout.addWidget(self._placeholder)
        self._cpu_plot = self._make_plot(_CHART_CPU, y_range=(0.0, 100.0))
        self._memory_plot = self._make_plot(_CHART_MEMORY, y_range=(0.0, 100.0))
        self._net_plot = self._make_plot(_CHART_NET, y_range=None)
        self._net_plot.setLabel("left", units="B/s")
        self._net_plot.addLegend(offset=(5, 5))
        self._cpu = _Series(self._cpu_plot.plot(pen=pg.mkPen("#1f77b4", width=_PEN_WIDTH)))
        self._memory = _Series(self._memory_plot.plot(pen=pg.mkPen("#9467bd", width=_PEN_WIDTH)))
        self._rx = _Series(self._net_plot.plot(pen=pg.mkPen("#2ca02c", width=_PEN_WIDTH), name="rx"))
        self._tx = _Series(self._net_plot.plot(pen=pg.mkPen("#d62728", width=_PEN_WIDTH), name="tx"))
        for plot in (self._cpu_plot, self._memory_plot, self._net_plot):
            layout.addWidget(plot, stretch=1)

    @property
    def node_id(self) -> str | None:
        """The node shown, or None."""
        return self._node_id

    def chart_points(self) -> int:
        """How many points the CPU chart holds (for tests and the status line)."""
        return int(self._cpu.x.size)

    def show_node(self, row: NodeRow | None) -> None:
        """Show ``row``'s facts and whatever history it carries (the snapshot's recent points)."""
        self._node_id = None if row is None else row.node_id
        self._placeholder.setVisible(row is None)
        self._last_sampled_at = None
        for series in (self._cpu, self._memory, self._rx, self._tx):
            series.replace([], [])
        if row is None:
            for label in self._facts.values():
                label.setText("")
            return
        self.update_facts(row)
        if row.history is not None:
            self.set_history(row.node_id, row.history)
        if row.sample is not None:
            self.extend(row.node_id, row.sample)

    def set_history(self, node_id: str, history: History) -> None:
        """Replace the charts with ``history`` if it is the shown node's."""
        if node_id != self._node_id:
            return
        x = list(history.sampled_at)
        self._cpu.replace(x, history.cpu_percent)
        self._memory.replace(x, history.mem_percent)
        self._rx.replace(x, history.net_rx_bytes_per_s)
        self._tx.replace(x, history.net_tx_bytes_per_s)
        self._last_sampled_at = x[-1] if x else None

    def extend(self, node_id: str, sample: Heartbeat) -> None:
        """Append one live sample if it is newer than the last point shown."""
        if node_id != self._node_id:
            return
        if self._last_sampled_at is not None and sample.sampled_at <= self._last_sampled_at:
            return
        self._last_sampled_at = sample.sampled_at
        self._cpu.append(sample.sampled_at, sample.cpu_percent)
        self._memory.append(sample.sampled_at, sample.mem_percent)
        self._rx.append(sample.sampled_at, sample.net_rx_bytes_per_s)
        self._tx.append(sample.sampled_at, sample.net_tx_bytes_per_s)

    def update_facts(self, row: NodeRow) -> None:
        """Refresh the facts form from ``row``."""
        status, facts, sample = row.status, row.facts, row.sample
        values: dict[str, str] = dict.fromkeys(_FACT_LABELS, "")
        values["Node"] = row.node_id
        values["State"] = status.state + (f" ({status.reason})" if status.reason else "")
        values["Interval"] = f"{status.interval_s:g} s"
        values["Clock skew"] = "" if status.clock_skew_s is None else f"{status.clock_skew_s:+.3f} s"
        values["Samples lost"] = f"{status.missing_samples} missing, {status.dropped_samples} dropped by the agent"
        if facts is not None:
            cpus = facts.cpu_count_logical
            values["Hostname"] = facts.hostname + (" (container)" if facts.in_container else "")
            values["OS"] = f"{facts.os} {facts.os_release}"
            values["Platform"] = f"{facts.platform} · {facts.arch}"
            values["CPUs"] = "" if cpus is None else f"{cpus} logical, {facts.cpu_count_physical or '?'} physical"
            values["Memory"] = format_bytes(facts.memory_total_bytes)
            values["Agent"] = f"nodewatch {facts.agent_version} · Python {facts.python_version}"
            if facts.boot_time_at is not None:
                booted = dt.datetime.fromtimestamp(facts.boot_time_at).astimezone()
                values["Booted"] = booted.strftime("%Y-%m-%d %H:%M %Z")
        if sample is not None:
            values["Uptime"] = format_duration(sample.uptime_s)
        for name, text in values.items():
            label = self._facts[name]
            if label.text() != text:
                label.setText(text)

    @staticmethod
    def _make_plot(title: str, y_range: tuple[float, float] | None) -> pg.PlotWidget:
        plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        plot.setBackground("w")
        plot.setTitle(title, color="#333333", size="9pt")
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMouseEnabled(x=True, y=False)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setMinimumHeight(90)
        if y_range is not None:
            plot.setYRange(*y_range, padding=0.02)
        else:
            plot.enableAutoRange(axis="y")
        return plot
