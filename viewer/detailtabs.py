"""The detail pane's table tabs: disks, CPU, network, temperatures and processes of one node.

Each tab is a few read-only tables of plain text (``QTableWidgetItem`` never renders
markup: mount points, interface, sensor and process names are peer text) and a note that
says how old the slow-tier values are, or why a table is empty. ``fill`` changes only the
cells whose text changed, so a 1 Hz refresh of a visible tab repaints little.

Not here: what the rows say (``viewer.details``), the charts (``viewer.overview``). UI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

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

    def __init__(self, headers: Sequence[str], name: str) -> None:
        super().__init__(0, len(headers))
        self.setObjectName(name)
        self.setHorizontalHeaderLabels(list(headers))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setWordWrap(False)
        self.setAlternatingRowColors(True)
        rows = self.verticalHeader()
        assert rows is not None
        rows.setVisible(False)
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def fill(self, rows: Sequence[Sequence[str]]) -> None:
        """Show ``rows``, touching only the cells whose text changed."""
        if self.rowCount() != len(rows):
            self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = self.item(r, c)
                if item is None:
                    item = QTableWidgetItem(text)
                    if c:  # figures right-aligned, names left
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

    def __init__(self, name: str, tables: Sequence[tuple[Sequence[str], str]]) -> None:
        super().__init__()
        self.setObjectName(f"tab-{name}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.note = plain_label()
        self.note.setWordWrap(True)
        self.note.setObjectName(f"note-{name}")
        layout.addWidget(self.note)
        self.tables = [DetailTable(headers, table_name) for headers, table_name in tables]
        for table in self.tables:
            layout.addWidget(table, stretch=1)

    def set_note(self, text: str) -> None:
        """Set the note; an empty one hides."""
        self.note.setText(text)
        self.note.setVisible(bool(text))


def _notes(*parts: str) -> str:
    return "  ·  ".join(part for part in parts if part)


class NodeTables:
    """The five table tabs and how each fills from a sample and its kept slow-tier details."""

    def __init__(self) -> None:
        self.disks = TableTab("disks", [(details.DISK_HEADERS, "disks"), (details.DEVICE_HEADERS, "devices")])
        self.cpu = TableTab("cpu", [(details.CORE_HEADERS, "cores"), (details.MODE_HEADERS, "modes")])
        self.network = TableTab("network", [(details.INTERFACE_HEADERS, "interfaces")])
        self.temperatures = TableTab("temperatures", [(details.TEMPERATURE_HEADERS, "temperatures")])
        self.processes = TableTab("processes", [(details.PROCESS_HEADERS, "processes")])
        self.tabs: list[tuple[str, TableTab]] = [
            ("Disks", self.disks),
            ("CPU", self.cpu),
            ("Network", self.network),
            ("Temperatures", self.temperatures),
            ("Processes", self.processes),
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
            self.temperatures.tables[0].fill(details.temperature_rows(sample))
            self.temperatures.set_note("" if sample.temperatures else "no sensors reported by this node")
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
