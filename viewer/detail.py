"""``DetailPane``: the selected node's facts in plain words and its live charts (CPU, memory, network).

The charts fill at once from history (the snapshot's recent points, then the full
``NodeHistory`` the window requests), and then extend by one point per new sample;
``viewer.charts`` breaks them at gaps and shades outages. Every fact label is plain
text: hostnames, OS strings and reasons come from agents and are data, never markup.
The state reads "offline since 12:00:01 (4 m): the agent closed its connection", and
while the viewer is disconnected it says "as of HH:MM:SS".

Not here: networking or the table; the window calls ``show_node``, ``set_history``,
``extend`` and ``update_facts``. UI thread only.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Final

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from shared.messages import Heartbeat, History
from viewer.cells import NodeRow, describe_last_seen, describe_state, is_current
from viewer.charts import GAP_INTERVALS, Chart, gap_mask, gap_spans
from viewer.format import format_bytes, format_clock, format_duration

_CPU_TITLE: Final = "CPU %"
_MEMORY_TITLE: Final = "Memory %"
# Our own markup (constant), not peer text: the legend lives in the title so it never covers data.
_NET_TITLE: Final = "Network <span style='color:#2ca02c'>↓ rx</span> <span style='color:#d62728'>↑ tx</span>"

_FACT_LABELS: Final = (
    "Node",
    "State",
    "Last seen",
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


def plain_label(text: str = "") -> QLabel:
    """A label that shows its text literally, whatever it holds."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


class DetailPane(QWidget):
    """Facts and charts of one node; empty until a node is selected."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node_id: str | None = None
        self._last_sampled_at: float | None = None
        self._last_seq: int | None = None
        self._interval_s = 1.0
        self._gaps: list[tuple[float, float]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        facts_box = QGroupBox("Node")
        form = QFormLayout(facts_box)
        self._facts: dict[str, QLabel] = {}
        for name in _FACT_LABELS:
            label = plain_label()
            label.setObjectName(f"fact-{name.lower().replace(' ', '-')}")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)  # a long state or hostname wraps instead of widening the pane
            form.addRow(name + ":", label)
            self._facts[name] = label
        layout.addWidget(facts_box)

        self._placeholder = plain_label("Select a node to see its history.")
        layout.addWidget(self._placeholder)
        self.cpu_chart = Chart(_CPU_TITLE, percent=True)
        self.memory_chart = Chart(_MEMORY_TITLE, percent=True, link_to=self.cpu_chart)
        self.net_chart = Chart(_NET_TITLE, percent=False, link_to=self.cpu_chart)
        self._cpu = self.cpu_chart.add_series("#1f77b4")
        self._memory = self.memory_chart.add_series("#9467bd")
        self._rx = self.net_chart.add_series("#2ca02c")
        self._tx = self.net_chart.add_series("#d62728")
        self._charts = (self.cpu_chart, self.memory_chart, self.net_chart)
        for chart in self._charts:
            layout.addWidget(chart.plot, stretch=1)
            chart.show_recent(time.time())

    def fact(self, name: str) -> QLabel:
        """The label showing fact ``name`` (e.g. "Hostname")."""
        return self._facts[name]

    @property
    def node_id(self) -> str | None:
        """The node shown, or None."""
        return self._node_id

    def chart_points(self) -> int:
        """How many points the CPU chart holds (for tests and the status line)."""
        return int(self._cpu.x.size)

    def show_node(self, row: NodeRow | None, now_at: float | None = None, server_offset_s: float = 0.0) -> None:
        """Show ``row``'s facts and whatever history it carries (the snapshot's recent points)."""
        self._node_id = None if row is None else row.node_id
        self._placeholder.setVisible(row is None)
        self._last_sampled_at = None
        self._last_seq = None
        self._gaps = []
        empty = np.empty(0)
        for series in (self._cpu, self._memory, self._rx, self._tx):
            series.replace(empty, [], np.zeros(0, dtype=bool))
        for chart in self._charts:
            chart.shade([])
            chart.show_recent(time.time() if now_at is None else now_at)
        if row is None:
            for label in self._facts.values():
                label.setText("")
            return
        self._interval_s = row.status.interval_s
        self.update_facts(row, now_at, server_offset_s=server_offset_s)
        if row.history is not None:
            self.set_history(row.node_id, row.history)
        if row.sample is not None:
            self.extend(row.node_id, row.sample)

    def set_history(self, node_id: str, history: History) -> None:
        """Replace the charts with ``history`` if it is the shown node's."""
        if node_id != self._node_id:
            return
        x = np.asarray(history.sampled_at, dtype=float)
        gaps = gap_mask(history.seq, x, self._interval_s)
        self._cpu.replace(x, history.cpu_percent, gaps)
        self._memory.replace(x, history.mem_percent, gaps)
        self._rx.replace(x, history.net_rx_bytes_per_s, gaps)
        self._tx.replace(x, history.net_tx_bytes_per_s, gaps)
        self._last_sampled_at = float(x[-1]) if x.size else None
        self._last_seq = history.seq[-1] if history.seq else None
        self._gaps = gap_spans(x, gaps)
        for chart in self._charts:  # x axes are linked; the network chart rescales its y axis too
            chart.follow_data()
        self._shade()

    def extend(self, node_id: str, sample: Heartbeat) -> None:
        """Append one live sample if it is newer than the last point shown; a seq or time jump breaks the curve."""
        if node_id != self._node_id:
            return
        last_at, last_seq = self._last_sampled_at, self._last_seq
        if last_at is not None and sample.sampled_at <= last_at:
            return
        after_gap = last_at is not None and (
            sample.sampled_at - last_at > GAP_INTERVALS * self._interval_s
            or (last_seq is not None and sample.seq > last_seq + 1)
        )
        if after_gap and last_at is not None:
            self._gaps.append((last_at, sample.sampled_at))
        first = last_at is None
        self._last_sampled_at, self._last_seq = sample.sampled_at, sample.seq
        self._cpu.append(sample.sampled_at, sample.cpu_percent, after_gap=after_gap)
        self._memory.append(sample.sampled_at, sample.mem_percent, after_gap=after_gap)
        self._rx.append(sample.sampled_at, sample.net_rx_bytes_per_s, after_gap=after_gap)
        self._tx.append(sample.sampled_at, sample.net_tx_bytes_per_s, after_gap=after_gap)
        if first:
            for chart in self._charts:
                chart.follow_data()
        if after_gap:
            self._shade()

    def _shade(self, outage_until: float | None = None) -> None:
        spans = list(self._gaps)
        if outage_until is not None and self._last_sampled_at is not None and outage_until > self._last_sampled_at:
            spans.append((self._last_sampled_at, outage_until))
        for chart in self._charts:
            chart.shade(spans)

    def update_facts(
        self, row: NodeRow, now_at: float | None = None, as_of: float | None = None, server_offset_s: float = 0.0
    ) -> None:
        """Refresh the facts from ``row`` at local time ``now_at``; ``as_of`` (disconnected) marks them old.

        ``server_offset_s`` is the collector's clock minus ours (``NodeTableModel.server_offset_s``).
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
        for name, text in values.items():
            label = self._facts[name]
            if label.text() != text:
                label.setText(text)
        if row.node_id == self._node_id:
            # The x axis is the agent's clock: collector time (ours + offset) plus the agent's skew.
            self._shade(None if is_current(row) else now_at + offset_s + (status.clock_skew_s or 0.0))
