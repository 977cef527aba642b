"""The detail pane's table tabs: disks, CPU, network, temperatures and GPUs, and processes of one node.

Each tab is a few read-only tables of plain text (``QTableWidgetItem`` never renders
markup: mount points, interface, sensor and process names are peer text) and a note that
says how old the slow-tier values are, or why a table is empty. ``fill`` changes only the
cells whose text changed, so a 1 Hz refresh of a visible tab repaints little.

Not here: what the rows say (``viewer.details``), the charts (``viewer.overview``). UI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from shared.messages import Heartbeat
from viewer import details
from viewer.details import SlowDetails


def plain_label(text: str = "") -> QLabel:
    """A label that shows its text literally, whatever it holds."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


class DetailTable(QTableWidget):
    """A read-only table of strings with fixed headers."""

    def __init__(self, headers: Sequence[str], name: str, text_columns: frozenset[int] = frozenset({0})) -> None:
        super().__init__(0, len(headers))
        self.setObjectName(name)
        self._text_columns = text_columns  # names and words, left-aligned; figures are right-aligned
        self.setHorizontalHeaderLabels(list(headers))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setWordWrap(False)
        self.setAlternatingRowColors(True)
        rows = self.verticalHeader()
        assert rows is not None
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 6)
        # As tall as its rows (shrinking, with a scroll bar, when the pane is short): no empty grey block.
        self.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the name takes the room; figures stay tight

    def fill(self, rows: Sequence[Sequence[str]]) -> None:
        """Show ``rows``, touching only the cells whose text changed."""
        if self.rowCount() != len(rows):
            self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = self.item(r, c)
                if item is None:
                    item = QTableWidgetItem(text)
                    if c not in self._text_columns:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.setItem(r, c, item)
                elif item.text() != text:
                    item.setText(text)

    def texts(self) -> list[list[str]]:
        """What the table shows, row by row."""
        return [
            [(item.text() if (item := self.item(r, c)) is not None else "") for c in range(self.columnCount())]
            for r in range(self.rowCount())
        ]


class TableTab(QWidget):
    """One tab: a note over one or more tables."""

    def __init__(self, name: str, tables: Sequence[tuple[Sequence[str], str, frozenset[int]]]) -> None:
        super().__init__()
        self.setObjectName(f"tab-{name}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.note = plain_label()
        self.note.setWordWrap(True)
        self.note.setObjectName(f"note-{name}")
        layout.addWidget(self.note)
        self.tables = [DetailTable(headers, table_name, text) for headers, table_name, text in tables]
        for table in self.tables:
            layout.addWidget(table)
        layout.addStretch(1)

    def set_note(self, text: str) -> None:
        """Set the note; an empty one hides."""
        self.note.setText(text)
        self.note.setVisible(bool(text))


def _notes(*parts: str) -> str:
    return "  ·  ".join(part for part in parts if part)


class NodeTables:
    """The five table tabs and how each fills from a sample and its kept slow-tier details."""

    def __init__(self) -> None:
        first, names = frozenset({0}), frozenset({0, 2})
        disks = [(details.DISK_HEADERS, "disks", frozenset({0, 7})), (details.DEVICE_HEADERS, "devices", first)]
        self.disks = TableTab("disks", disks)
        self.cpu = TableTab("cpu", [(details.CORE_HEADERS, "cores", first), (details.MODE_HEADERS, "modes", first)])
        self.network = TableTab("network", [(details.INTERFACE_HEADERS, "interfaces", frozenset({0, 7}))])
        # GPUs under the sensors rather than in a tab of their own: the seven tabs fit the default width.
        gpus = (details.GPU_HEADERS, "gpus", frozenset({0, 1}))
        self.temperatures = TableTab("temperatures", [(details.TEMPERATURE_HEADERS, "temperatures", first), gpus])
        self.processes = TableTab("processes", [(details.PROCESS_HEADERS, "processes", names)])
        # Short titles: all seven tabs fit the pane's default width (no scroll arrows).
        self.tabs: list[tuple[str, TableTab]] = [
            ("Disks", self.disks),
            ("CPU", self.cpu),
            ("Net", self.network),
            ("Temps", self.temperatures),
            ("Top", self.processes),
        ]

    def clear(self) -> None:
        """Empty every table (no node shown)."""
        for _title, tab in self.tabs:
            tab.set_note("")
            for table in tab.tables:
                table.fill([])

    def show(self, tab: QWidget | None, sample: Heartbeat | None, kept: SlowDetails | None, interval_s: float) -> None:
        """Fill ``tab`` (the visible one; the others fill when shown) from ``sample`` and ``kept``."""
        if sample is None:
            self.clear()
            return
        slow = _Kept(kept or SlowDetails(), sample.sampled_at, interval_s)
        if tab is self.disks:
            self._show_disks(sample, slow)
        elif tab is self.cpu:
            modes = slow("cpu_mode_percent")
            self.cpu.tables[0].fill(details.core_rows(sample))
            self.cpu.tables[1].fill(details.mode_rows(modes, slow("pressure_avg10_percent")))
            cores = "" if sample.cpu_per_core_percent else "no per-core figures sent"
            self.cpu.set_note(_notes(details.as_of(modes, "modes"), cores))
        elif tab is self.network:
            errors = slow("net_interface_errors")
            self.network.tables[0].fill(details.interface_rows(sample, errors, slow("net_interfaces_down")))
            tcp = details.connection_text(slow("tcp_established"))
            self.network.set_note(_notes(tcp, details.as_of(errors, "errors")))
        elif tab is self.temperatures:
            gpus = slow("gpus")
            self.temperatures.tables[0].fill(details.temperature_rows(sample))
            gpu_rows = details.gpu_rows(gpus)
            self.temperatures.tables[1].fill(gpu_rows)
            self.temperatures.tables[1].setVisible(bool(gpu_rows))  # no empty GPU header on a node without GPUs
            sensors = "" if sample.temperatures else "no sensors reported by this node"
            self.temperatures.set_note(_notes(sensors, details.as_of(gpus, "GPUs")))
        elif tab is self.processes:
            self.processes.tables[0].fill(details.process_rows(sample))
            sent = sample.top_cpu is not None or sample.top_memory is not None
            self.processes.set_note("" if sent else "the agent sends top processes only when asked to")

    def _show_disks(self, sample: Heartbeat, slow: _Kept) -> None:
        inodes, devices = slow("disk_inodes"), slow("disk_devices")
        self.disks.tables[0].fill(details.disk_rows(sample, inodes, slow("disks_read_only")))
        self.disks.tables[1].fill(details.device_rows(devices))
        kept = _notes(details.as_of(inodes, "inodes"), details.as_of(devices, "devices"))
        self.disks.set_note(_notes("Use% = used / (used + available), as df", kept))


class _Kept:
    """The kept slow-tier carriers of one node as of its newest sample."""

    def __init__(self, kept: SlowDetails, latest_at: float, interval_s: float) -> None:
        self._kept, self._latest_at, self._interval_s = kept, latest_at, interval_s

    def __call__(self, name: str) -> Heartbeat | None:
        return self._kept.carrier(name, self._latest_at, self._interval_s)
