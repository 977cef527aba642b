"""``DetailPane``: the selected node in depth: its state in words over tabs of charts, tables and facts.

Tabs: Charts (CPU, memory, load, network and disk I/O, ``viewer.overview``), Disks
(as ``df`` shows them, with inodes, read-only mounts and per-device I/O), CPU (per core,
by mode, pressure), Net (per interface, errors, links down, TCP), Temps (temperature sensors),
Top (processes, when the agent sends them) and Facts. Over the charts, a range picker
(``viewer.rangepicker``: 15 min live ... 30 d from the collector's store; the pick holds when
another node is selected) and a crosshair readout (``viewer.crosshair``). The slow-tier values (every ~5 s) are the
row's kept ones (``viewer.details.SlowDetails``), each with its time. Every label and cell
is plain text: hostnames, OS strings, mount and process names come from agents and are data.
The state reads "offline since 12:00:01 (4 m): the agent closed its connection", and
while the viewer is disconnected it says "as of HH:MM:SS".

Not here: networking or the table; the window calls ``show_node``, ``take_history``,
``extend``, ``update_facts`` and ``on_link_state``, and sends what ``history_requested``
asks for. UI thread only.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Final

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QPalette
from PyQt6.QtWidgets import QFormLayout, QFrame, QLabel, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from shared.messages import Heartbeat, History, HistoryRequest, NodeHistory
from viewer.cells import NodeRow, describe_last_seen, describe_state, is_current
from viewer.charts import Chart
from viewer.crosshair import Crosshair, readout_label
from viewer.details import file_handle_text
from viewer.detailtabs import NodeTables, plain_label
from viewer.format import format_bytes, format_clock, format_duration
from viewer.historyload import RangeChoice
from viewer.linkstate import LinkState
from viewer.overview import OverviewCharts
from viewer.rangepicker import RangeLoader, RangePicker

__all__ = ["DetailPane", "plain_label"]

# Live points reach the charts this long after the batch that brought them, so the five charts
# repaint in a frame of their own instead of on top of the table's (bench/viewer_stall p99).
CHART_DELAY_MS: Final = 40
# Live samples waiting for the charts: a few at 1 Hz; bounded in case the UI thread stalls.
MAX_PENDING_SAMPLES: Final = 100

# Always in sight, over the tabs: what the node is and whether its figures are live.
_HEADER_LABELS: Final = ("Node", "State", "Last seen")
_FACT_TAB_LABELS: Final = (
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
    "File handles",
)
_FACT_LABELS: Final = _HEADER_LABELS + _FACT_TAB_LABELS


def _fact_form(names: tuple[str, ...], labels: dict[str, QLabel]) -> QWidget:
    widget = QWidget()
    form = QFormLayout(widget)
    form.setContentsMargins(4, 2, 4, 2)
    for name in names:
        label = plain_label()
        label.setObjectName(f"fact-{name.lower().replace(' ', '-')}")
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setWordWrap(True)  # a long state or hostname wraps instead of widening the pane
        form.addRow(name + ":", label)
        labels[name] = label
    return widget


class DetailPane(QWidget):
    """State, tabs of charts and tables, and facts of one node; empty until a node is selected.

    ``history_requested(HistoryRequest)``: a history the window should ask the collector for
    (the live window's, or a picked range's).
    """

    history_requested = pyqtSignal(HistoryRequest)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node_id: str | None = None
        self._row: NodeRow | None = None
        self._interval_s = 1.0
        self._server_offset_s = 0.0
        self._pending: list[Heartbeat] = []
        self._chart_timer = QTimer(self)
        self._chart_timer.setSingleShot(True)
        self._chart_timer.setInterval(CHART_DELAY_MS)
        self._chart_timer.timeout.connect(self._draw_pending)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self._facts: dict[str, QLabel] = {}
        layout.addWidget(_fact_form(_HEADER_LABELS, self._facts))
        self._placeholder = plain_label("Select a node to see its history.")
        layout.addWidget(self._placeholder)

        self.overview = OverviewCharts()
        self.tables = NodeTables()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # Scrolled, so five readable charts never force a tall window (a small one scrolls them instead).
        overview_scroll = QScrollArea()
        overview_scroll.setWidgetResizable(True)
        overview_scroll.setFrameShape(QFrame.Shape.NoFrame)
        overview_scroll.setWidget(self.overview)
        self.picker = RangePicker()
        self.ranges = RangeLoader(self.picker, parent=self)
        self.ranges.request.connect(self.history_requested)
        self.picker.chosen.connect(self._on_range_chosen)
        self.readout = readout_label()
        self.crosshair = Crosshair(self.overview, self.readout, parent=self)
        charts_tab = QWidget()
        charts_layout = QVBoxLayout(charts_tab)
        charts_layout.setContentsMargins(0, 2, 0, 0)
        for widget in (self.picker, self.readout):
            charts_layout.addWidget(widget)
        charts_layout.addWidget(overview_scroll, stretch=1)
        self.tabs.addTab(charts_tab, "Charts")
        for title, tab in self.tables.tabs:
            self.tabs.addTab(tab, title)
        self.facts_tab = _fact_form(_FACT_TAB_LABELS, self._facts)
        self.tabs.addTab(self.facts_tab, "Facts")
        self.tabs.currentChanged.connect(self._refresh_tables)
        layout.addWidget(self.tabs, stretch=1)
        self.overview.reset(time.time(), self._interval_s)
        # The Charts tab's charts by name (the overview makes them once and keeps them).
        self.cpu_chart: Chart = self.overview.cpu_chart
        self.memory_chart: Chart = self.overview.memory_chart
        self.net_chart: Chart = self.overview.net_chart

    def fact(self, name: str) -> QLabel:
        """The label showing fact ``name`` (e.g. "Hostname")."""
        return self._facts[name]

    def show_tab(self, title: str) -> QWidget:
        """Bring the tab called ``title`` to the front and return it."""
        for index in range(self.tabs.count()):
            if self.tabs.tabText(index) == title:
                self.tabs.setCurrentIndex(index)
                widget = self.tabs.widget(index)
                assert widget is not None
                return widget
        raise KeyError(title)

    @property
    def node_id(self) -> str | None:
        """The node shown, or None."""
        return self._node_id

    def chart_points(self) -> int:
        """How many points the CPU chart holds (for tests and the status line)."""
        return self.overview.points()

    def apply_palette(self, palette: QPalette) -> None:
        """Draw the charts in ``palette``'s colours (the window calls this when the system's changes)."""
        self.overview.apply_palette(palette)

    def show_node(self, row: NodeRow | None, now_at: float | None = None, server_offset_s: float = 0.0) -> None:
        """Show ``row``'s facts and whatever history it carries (the snapshot's recent points)."""
        self._node_id = None if row is None else row.node_id
        self._row = row
        self._placeholder.setVisible(row is None)
        self._pending.clear()
        self._chart_timer.stop()
        self._interval_s = 1.0 if row is None else row.status.interval_s
        self._server_offset_s = server_offset_s
        self.overview.reset(time.time() if now_at is None else now_at, self._interval_s)
        self.crosshair.refresh()
        self.ranges.load(self._node_id, server_offset_s)  # the picked range holds: asked again for this node
        if row is None:
            for label in self._facts.values():
                label.setText("")
            self.tables.clear()
            return
        self.update_facts(row, now_at, server_offset_s=server_offset_s)
        if row.history is not None:
            self.set_history(row.node_id, row.history)
        if row.sample is not None:
            self.overview.extend(row.sample)

    def set_history(self, node_id: str, history: History) -> None:
        """Replace the charts with ``history`` if it is the shown node's and the live window is picked."""
        if node_id == self._node_id and self.ranges.choice.live:
            self.overview.set_history(history)
            self.crosshair.refresh()

    def take_history(self, reply: NodeHistory) -> None:
        """Draw a ``history`` answer: a picked range's (if it is the awaited one), or the live window's."""
        if reply.range is None:
            self.set_history(reply.node_id, reply.history)
            return
        drawing = self.ranges.accept(reply.range)
        if drawing is None or drawing.node_id != self._node_id:
            return
        self._pending.clear()  # live samples up to now are in the range already
        self.overview.set_range(drawing, self._interval_s)
        if self._row is not None:
            self._shade_outage(self._row, time.time(), self._server_offset_s)
        self.crosshair.refresh()

    def on_link_state(self, state: LinkState) -> None:
        """The link's state: a range in flight fails in words when the connection drops."""
        self.ranges.on_link_state(state)

    def _on_range_chosen(self, choice: RangeChoice) -> None:
        if choice.live and self.ranges.choice.live:
            return  # a stored range clicked again loads again (fresh to now, or after a failure)
        self.ranges.pick(choice)
        row = self._row if self._row is not None and self._row.node_id == self._node_id else None
        self.show_node(row, None, self._server_offset_s)
        if row is not None:
            self.ask_live_history(row.node_id)

    def ask_live_history(self, node_id: str) -> None:
        """Ask for ``node_id``'s full in-memory window, only while it is drawn: a stored range ignores it."""
        if self.ranges.choice.live:
            self.history_requested.emit(HistoryRequest(node_id=node_id))

    def extend(self, node_id: str, sample: Heartbeat) -> None:
        """Append one live sample, ``CHART_DELAY_MS`` later, if newer than the last point; a gap breaks the curve."""
        if node_id != self._node_id:
            return
        self._pending = [*self._pending[-(MAX_PENDING_SAMPLES - 1) :], sample]
        if not self._chart_timer.isActive():
            self._chart_timer.start()

    def _draw_pending(self) -> None:
        pending, self._pending = self._pending, []
        for sample in pending:
            self.overview.extend(sample)

    def _refresh_tables(self) -> None:
        row = self._row
        if row is not None and row.node_id == self._node_id:
            self.tables.show(self.tabs.currentWidget(), row.sample, row.details, row.status.interval_s)

    def update_facts(
        self, row: NodeRow, now_at: float | None = None, as_of: float | None = None, server_offset_s: float = 0.0
    ) -> None:
        """Refresh the facts (and the visible table tab) from ``row`` at local time ``now_at``.

        ``as_of`` (disconnected) marks them old; ``server_offset_s`` is the collector's clock
        minus ours (``NodeTableModel.server_offset_s``).
        """
        now_at = time.time() if now_at is None else now_at
        status, facts, sample = row.status, row.facts, row.sample
        offset_s = server_offset_s
        values: dict[str, str] = dict.fromkeys(_FACT_LABELS, "")
        values["Node"] = row.node_id
        values["State"] = describe_state(status, offset_s, now_at if as_of is None else as_of)
        if as_of is not None:
            values["State"] += f" (as of {format_clock(as_of)}: not connected to the collector)"
        values["Last seen"] = describe_last_seen(status, offset_s, now_at)
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
            values["Uptime"] = format_duration(sample.uptime_s) + ("" if is_current(row) else " (at last sample)")
            if row.details is not None:
                handles = row.details.carrier("fd_allocated", sample.sampled_at, status.interval_s)
                values["File handles"] = file_handle_text(handles)
        for name, text in values.items():
            label = self._facts[name]
            if label.text() != text:
                label.setText(text)
        if row.node_id == self._node_id:
            self._row = row
            self._refresh_tables()
            self._shade_outage(row, now_at, offset_s)

    def _shade_outage(self, row: NodeRow, now_at: float, offset_s: float) -> None:
        # The x axis is the agent's clock: collector time (ours + offset) plus the agent's skew.
        skew_s = row.status.clock_skew_s or 0.0
        self.overview.shade(None if is_current(row) else now_at + offset_s + skew_s)
