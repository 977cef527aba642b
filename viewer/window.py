"""``MainWindow``: the node table, filter box, detail pane and status bar, wired to a ``CollectorLink``.

Everything here runs on the UI thread and only reacts to the link's signals and two
timers: a 1 s tick for "last seen" and the reconnect countdown. Repaints of the table
are coalesced by construction: the link delivers at most ~10 batches per second, and
the age tick rides on a batch when one came in the last second.

Not here: networking (``viewer.link``) or table logic (``viewer.model``). No modal dialog,
ever: errors go to the status bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from PyQt6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from shared.messages import NodeHistory
from viewer.batching import NodeBatch
from viewer.detail import DetailPane
from viewer.link import CollectorLink, LinkState, Phase
from viewer.model import NODE_ID_ROLE, Column, NodeTableModel
from viewer.sorting import NodeSortFilterModel

# "last seen" counts whole seconds, so a 1 s tick is as fine as the text gets.
AGE_TICK_MS: Final = 1000
_AGE_TICK_S: Final = AGE_TICK_MS / 1000.0
# Initial widths (Interactive: the user may drag them; never ResizeToContents, which walks the model).
_COLUMN_WIDTHS: Final[dict[Column, int]] = {
    Column.NODE: 170,
    Column.STATE: 80,
    Column.CPU: 70,
    Column.LOAD: 120,
    Column.MEMORY: 75,
    Column.DISK: 90,
    Column.NET: 190,
    Column.UPTIME: 90,
    Column.LAST_SEEN: 90,
}
_PHASE_COLOUR: Final[dict[Phase, str]] = {
    Phase.CONNECTING: "#8a6d00",
    Phase.CONNECTED: "#1e7b1e",
    Phase.RECONNECTING: "#b35c00",
    Phase.AUTH_FAILED: "#b00020",
    Phase.STOPPED: "#555555",
}


def describe_state(state: LinkState, now_s: float) -> str:
    """The connection indicator's text for ``state`` at monotonic time ``now_s``."""
    countdown = ""
    if state.retry_at is not None:
        countdown = f"{max(0, round(state.retry_at - now_s))} s"
    if state.phase is Phase.CONNECTED:
        return "connected"
    if state.phase is Phase.CONNECTING:
        return f"connecting... (retry in {countdown})" if countdown else "connecting..."
    if state.phase is Phase.RECONNECTING:
        return f"reconnecting in {countdown}" if countdown else "reconnecting..."
    if state.phase is Phase.AUTH_FAILED:
        retry = f"; retrying in {countdown}" if countdown else ""
        return f"auth failed: {state.detail}{retry}"
    return "stopped"


class MainWindow(QMainWindow):
    """The viewer window; owns its link and stops it on close.

    ``snapshot_applied`` fires after a (re)connect's snapshot is in the table: the moment
    the long-lived data set is loaded (``viewer.cli`` freezes the GC's view of it then).
    """

    snapshot_applied = pyqtSignal()

    def __init__(
        self,
        link: CollectorLink,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.setWindowTitle("nodewatch")
        self.resize(1280, 760)
        self._link = link
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._selected_node_id: str | None = None
        self._last_age_refresh_s = float("-inf")
        self._closed = False

        # No Qt parent: the window's Python attribute owns it, so a test holding the model outlives the window.
        self.model = NodeTableModel()
        self.proxy = NodeSortFilterModel(self.model, self)

        self.filter_box, self.table, self.detail = self._build_central()

        self.counts_label = QLabel()
        self.connection_label = QLabel()
        status_bar = self.statusBar()
        assert status_bar is not None
        status_bar.addWidget(self.counts_label, 1)
        status_bar.addPermanentWidget(self.connection_label)
        self._update_counts()
        self._show_state(link.state)

        self._age_timer = QTimer(self)
        self._age_timer.setInterval(AGE_TICK_MS)
        self._age_timer.timeout.connect(self._on_age_tick)
        self._age_timer.start()

        link.batch_ready.connect(self._on_batch)
        link.state_changed.connect(self._show_state)
        link.history_ready.connect(self._on_history)

    def _build_central(self) -> tuple[QLineEdit, QTableView, DetailPane]:
        """Filter box and table on the left, detail pane on the right."""
        filter_box = QLineEdit()
        filter_box.setPlaceholderText("Filter nodes…")
        filter_box.setClearButtonEnabled(True)
        filter_box.textChanged.connect(self.proxy.set_filter)

        table = QTableView()
        table.setModel(self.proxy)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        rows = table.verticalHeader()
        assert rows is not None
        rows.setVisible(False)
        # Every row the same height: the view never asks the model to measure rows.
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(table.fontMetrics().height() + 8)
        header = table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.STATE, QHeaderView.ResizeMode.Fixed)
        header.setStretchLastSection(True)
        for column, width in _COLUMN_WIDTHS.items():
            header.resizeSection(column, width)
        header.moveSection(header.visualIndex(Column.STATE), 0)  # state first, as colour and text
        table.setSortingEnabled(True)
        table.sortByColumn(Column.NODE, Qt.SortOrder.AscendingOrder)
        selection_model = table.selectionModel()
        assert selection_model is not None
        selection_model.currentRowChanged.connect(self._on_current_row_changed)

        detail = DetailPane()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(filter_box)
        left_layout.addWidget(table)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([820, 460])  # the table's columns need the room; the charts read fine narrower
        self.setCentralWidget(splitter)
        return filter_box, table, detail

    # -- public ----------------------------------------------------------------------------

    @property
    def link(self) -> CollectorLink:
        """The link this window follows."""
        return self._link

    @property
    def selected_node_id(self) -> str | None:
        """The node shown in the detail pane."""
        return self._selected_node_id

    def select_node(self, node_id: str) -> bool:
        """Select ``node_id``'s row (e.g. after a rebuild); False if it is not shown."""
        source_row = self.model.row_of(node_id)
        if source_row is None:
            return False
        proxy_index = self.proxy.mapFromSource(self.model.index(source_row, Column.NODE))
        if not proxy_index.isValid():
            return False
        selection_model = self.table.selectionModel()
        assert selection_model is not None
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        selection_model.setCurrentIndex(proxy_index, flags)
        return True

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop the timers and the network thread (at most 2 s), then close."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every timer and the link; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._age_timer.stop()
        self._link.stop()

    # -- slots -------------------------------------------------------------------------------

    def _on_batch(self, batch: NodeBatch) -> None:
        if self._closed:
            return
        now_at = self._wall_clock()
        self.model.apply_batch(batch, now_at)
        self._refresh_ages_if_due(force=True)
        self._update_counts()
        node_id = self._selected_node_id
        if batch.is_snapshot:
            self.snapshot_applied.emit()
        if node_id is None:
            return
        row = self.model.node(node_id)
        if row is None:
            return
        came_back = node_id in batch.entries and self.table.currentIndex().data(NODE_ID_ROLE) != node_id
        if batch.is_snapshot or came_back:
            # A fresh snapshot after (re)connecting, or the node reappeared after vanishing
            # (a restarted collector before its agents return): keep the selection, refill the charts.
            if self.select_node(node_id) or batch.is_snapshot:
                self.detail.show_node(row)
                self._link.request_history(node_id)
        elif node_id in batch.entries:
            self.detail.update_facts(row)
            if row.sample is not None:
                self.detail.extend(node_id, row.sample)

    def _on_history(self, reply: NodeHistory) -> None:
        self.detail.set_history(reply.node_id, reply.history)
        row = self.model.node(reply.node_id)
        if row is not None and row.sample is not None:
            self.detail.extend(reply.node_id, row.sample)

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self.proxy.removing:
            # The selected node vanished and Qt moved the cursor to a neighbour: not the user's
            # choice. Keep following the vanished node (it may come back) and un-highlight the neighbour.
            QTimer.singleShot(0, self._clear_view_selection)
            return
        node_id = current.data(NODE_ID_ROLE) if current.isValid() else None
        if not isinstance(node_id, str) or node_id == self._selected_node_id:
            return
        self._selected_node_id = node_id
        self.detail.show_node(self.model.node(node_id))
        self._link.request_history(node_id)

    def _clear_view_selection(self) -> None:
        selection_model = self.table.selectionModel()
        if selection_model is not None and self.table.currentIndex().data(NODE_ID_ROLE) != self._selected_node_id:
            selection_model.clear()

    def _on_age_tick(self) -> None:
        self._refresh_ages_if_due(force=False)
        self._show_state(self._link.state)

    def _refresh_ages_if_due(self, *, force: bool) -> None:
        # Piggy-back on a batch: both dataChanged land in one paint. The timer only
        # refreshes on its own when no batch came for a whole tick (an idle fleet).
        now_s = self._monotonic()
        if now_s - self._last_age_refresh_s < (_AGE_TICK_S if force else _AGE_TICK_S * 0.9):
            return
        self._last_age_refresh_s = now_s
        self.model.refresh_ages(self._wall_clock())

    def _show_state(self, state: LinkState) -> None:
        text = "● " + describe_state(state, self._monotonic())
        if text != self.connection_label.text():
            self.connection_label.setText(text)
        style = f"color: {_PHASE_COLOUR[state.phase]}; font-weight: bold;"
        if style != self.connection_label.styleSheet():  # restyling is costly: only on a change
            self.connection_label.setStyleSheet(style)
        self.connection_label.setToolTip(state.detail)
        self.model.set_connected(state.phase is Phase.CONNECTED)

    def _update_counts(self) -> None:
        counts = self.model.state_counts()
        text = f"{sum(counts.values())} nodes · {counts['online']} online · {counts['stale']} stale · "
        text += f"{counts['offline']} offline"
        if self.counts_label.text() != text:
            self.counts_label.setText(text)
