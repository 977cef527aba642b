"""``MainWindow``: the filter row, the banner, the node table, the detail pane and the status bar.

Everything here runs on the UI thread and only reacts to the link's signals, the
user, and one 1 s timer (for "last seen" and the retry countdown). Table repaints are
coalesced by construction: the link delivers at most ~10 batches per second, and the
age tick rides on a batch when one came in the last second.

Behaviour a user relies on:
- the detail pane follows the *selected* row: a header click or focus never picks a node;
- the row order holds still while the pointer is over the table, or while frozen (Z or Space),
  and a mark says so;
- Ctrl+F filters, Esc clears the filter, Enter opens a row, Ctrl+Q quits; a bad filter
  says why inline, and "N of M shown" counts what it keeps; a node filtered out leaves the pane;
- while disconnected a banner says why in words, and counts and the pane say "as of HH:MM:SS".

Not here: networking (``viewer.link``), what cells say (``viewer.cells``), the words of the
status (``viewer.status``). No modal dialog, ever. Peer text is shown as plain text only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from PyQt6.QtCore import QEvent, QItemSelection, QItemSelectionModel, QModelIndex, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import QMainWindow

from shared.messages import NodeHistory
from viewer.batching import NodeBatch
from viewer.cells import Column
from viewer.detail import DetailPane, plain_label
from viewer.filterbar import FilterBar
from viewer.filtering import NodeFilter
from viewer.grouping import GroupedSortFilterModel
from viewer.link import CollectorLink, LinkState, Phase
from viewer.model import MAX_ROWS, NODE_ID_ROLE, NodeTableModel
from viewer.remembered import WindowMemory
from viewer.status import banner, counts_text
from viewer.statuswidgets import BannerLabel, ConnectionLabel, side_by_side
from viewer.table import NodeTableView
from viewer.windowparts import WindowParts

# "last seen" counts whole seconds, so a 1 s tick is as fine as the text gets.
AGE_TICK_MS: Final = 1000
_AGE_TICK_S: Final = AGE_TICK_MS / 1000.0
_DISCONNECTED_SELECTION: Final = "QTableView { selection-background-color: #9e9e9e; }"
_PALETTE_EVENTS: Final = frozenset({QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange})


class MainWindow(QMainWindow):
    """The viewer window; owns its link and stops it on close.

    ``snapshot_applied`` fires after a (re)connect's snapshot is in the table: the moment
    the long-lived data set is loaded (``viewer.cli`` freezes the GC's view of it then).
    """

    snapshot_applied = pyqtSignal()

    def __init__(
        self,
        link: CollectorLink,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        collector_url: str = "",
        max_rows: int = MAX_ROWS,
        settings: QSettings | None = None,
    ) -> None:
        """``settings``: where the layout is remembered between runs (None: nowhere, e.g. a bench)."""
        super().__init__()
        self.setWindowTitle("nodewatch")
        self.resize(1280, 760)
        self._link = link
        self.collector_url = collector_url
        self._collector_url = collector_url or "the collector"
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._selected_node_id: str | None = None
        self._last_age_refresh_s = float("-inf")
        self._last_batch_at: float | None = None
        self._closed = False

        # No Qt parent: the window's Python attribute owns it, so a test holding the model outlives the window.
        self.model = NodeTableModel(max_rows=max_rows)
        self.proxy = GroupedSortFilterModel(self.model, self)
        self._build_central()

        self.counts_label = plain_label()
        self.connection_label = ConnectionLabel()
        status_bar = self.statusBar()
        assert status_bar is not None
        status_bar.addWidget(self.counts_label, 1)
        status_bar.addPermanentWidget(self.connection_label)
        self._show_state(link.state)

        self._age_timer = QTimer(self)
        self._age_timer.setInterval(AGE_TICK_MS)
        self._age_timer.timeout.connect(self._on_age_tick)
        self._age_timer.start()

        link.batch_ready.connect(self._on_batch)
        link.state_changed.connect(self._show_state)
        link.history_ready.connect(self._on_history)
        link.state_changed.connect(self.detail.on_link_state)  # a range in flight fails in words
        self.detail.history_requested.connect(link.request)  # a picked range (or the live window again)
        # Shortcuts, alerts dock, notifications, groups, frozen columns: before restore, which picks a group.
        self.parts = WindowParts(self, settings, wall_clock)
        self._memory = None if settings is None else WindowMemory(settings)
        if self._memory is not None:
            self._memory.restore(self)

    def _build_central(self) -> None:
        """Filter row, banner and table on the left, detail pane on the right."""
        self.filter_bar = FilterBar()
        self.filter_bar.filter_changed.connect(self._on_filter)
        self.filter_box = self.filter_bar.filter_box
        self.filter_box.returnPressed.connect(self._open_first_row)
        self.filter_error = self.filter_bar.filter_error
        self.shown_label = self.filter_bar.shown_label
        self.paused_label = self.filter_bar.paused_label
        self.banner = BannerLabel()

        self.table = NodeTableView()
        self.table.setModel(self.proxy)
        self.table.configure_columns()
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.STATE, Qt.SortOrder.DescendingOrder)  # problems first
        self.table.hover_changed.connect(self.filter_bar.set_hovered)
        self.filter_bar.hold_changed.connect(self.proxy.set_held)
        self.table.activated.connect(self._open_row)
        selection_model = self.table.selectionModel()
        assert selection_model is not None
        selection_model.selectionChanged.connect(self._on_selection_changed)

        self.detail = DetailPane()
        self.splitter = side_by_side(
            [self.filter_bar, self.banner, self.table], self.detail, self.table.columns_width()
        )
        self.setCentralWidget(self.splitter)

    # -- public ----------------------------------------------------------------------------

    @property
    def link(self) -> CollectorLink:
        """The link this window follows."""
        return self._link

    @property
    def selected_node_id(self) -> str | None:
        """The node shown in the detail pane."""
        return self._selected_node_id

    @property
    def frozen(self) -> bool:
        """True while the user froze the row order."""
        return self.filter_bar.frozen

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

    def focus_filter(self) -> None:
        """Put the cursor in the filter box, its text selected (Ctrl+F)."""
        self.filter_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_box.selectAll()

    def toggle_freeze(self) -> None:
        """Freeze the row order, or let it move again (Z or Space)."""
        self.filter_bar.toggle_freeze()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop the timers and the network thread (at most 2 s), then close."""
        self.shutdown()
        super().closeEvent(event)

    def changeEvent(self, event: QEvent | None) -> None:  # noqa: N802 - Qt's name
        """The system palette changed (dark mode on or off): the charts follow it."""
        if event is not None and event.type() in _PALETTE_EVENTS:
            self.detail.apply_palette(self.palette())
        super().changeEvent(event)

    def shutdown(self) -> None:
        """Save the layout, stop every timer and the link; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._memory is not None:
            self._memory.save(self)
        self._age_timer.stop()
        self._link.stop()

    # -- slots -------------------------------------------------------------------------------

    def _on_batch(self, batch: NodeBatch) -> None:
        if self._closed:
            return
        now_at = self._wall_clock()
        self._last_batch_at = now_at
        self.model.apply_batch(batch, now_at)
        self._refresh_ages_if_due(force=True)
        self.update_counts()
        if batch.is_snapshot:
            self.snapshot_applied.emit()
        self._drop_hidden_selection()
        node_id = self._selected_node_id
        row = None if node_id is None else self.model.node(node_id)
        if node_id is None or row is None:
            return
        came_back = node_id in batch.entries and self.table.currentIndex().data(NODE_ID_ROLE) != node_id
        if batch.is_snapshot or came_back:
            # A fresh snapshot after (re)connecting, or the node reappeared after vanishing
            # (a restarted collector before its agents return): keep the selection, refill the charts.
            if self.select_node(node_id) or batch.is_snapshot:
                self.detail.show_node(row, now_at, self.model.server_offset_s)
                self.detail.ask_live_history(node_id)
        elif node_id in batch.entries:
            self.detail.update_facts(row, now_at, server_offset_s=self.model.server_offset_s)
            if row.sample is not None:
                self.detail.extend(node_id, row.sample)

    def _on_history(self, reply: NodeHistory) -> None:
        self.detail.take_history(reply)
        row = self.model.node(reply.node_id)
        if row is not None and row.sample is not None:
            self.detail.extend(reply.node_id, row.sample)

    def _on_selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        if self.proxy.removing:
            # The selected node vanished and Qt moved the cursor to a neighbour: not the user's
            # choice. Keep following the vanished node (it may come back) and un-highlight the neighbour.
            QTimer.singleShot(0, self._clear_view_selection)
            return
        indexes = selected.indexes()
        node_id = indexes[0].data(NODE_ID_ROLE) if indexes else None
        if isinstance(node_id, str):
            self._show_node(node_id)

    def _show_node(self, node_id: str) -> None:
        if node_id == self._selected_node_id:
            return
        self._selected_node_id = node_id
        self.detail.show_node(self.model.node(node_id), self._wall_clock(), self.model.server_offset_s)
        self.detail.ask_live_history(node_id)

    def _open_row(self, index: QModelIndex) -> None:
        """Enter (or a double click) on a row: select it and show it in the pane."""
        node_id = index.data(NODE_ID_ROLE)
        if isinstance(node_id, str):
            self.select_node(node_id)
            self._show_node(node_id)

    def _open_first_row(self) -> None:
        if self.proxy.rowCount():
            self._open_row(self.proxy.index(0, Column.NODE))
            self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def _clear_view_selection(self) -> None:
        selection_model = self.table.selectionModel()
        if selection_model is not None and self.table.currentIndex().data(NODE_ID_ROLE) != self._selected_node_id:
            selection_model.clear()

    def _drop_hidden_selection(self) -> None:
        """A selected node the filter hides leaves the pane (a node the collector forgot is still followed)."""
        node_id = self._selected_node_id
        source_row = None if node_id is None else self.model.row_of(node_id)
        if source_row is None or self.proxy.mapFromSource(self.model.index(source_row, Column.NODE)).isValid():
            return
        self._selected_node_id = None
        self.detail.show_node(None)
        selection_model = self.table.selectionModel()
        if selection_model is not None:
            selection_model.clear()

    def _on_filter(self, node_filter: NodeFilter) -> None:
        self.proxy.set_filter(node_filter)
        self._drop_hidden_selection()
        self.update_counts()

    def _on_age_tick(self) -> None:
        self._refresh_ages_if_due(force=False)
        self._show_state(self._link.state)
        row = None if self._selected_node_id is None else self.model.node(self._selected_node_id)
        if row is not None:
            self.detail.update_facts(row, self._wall_clock(), self._as_of(), self.model.server_offset_s)

    def _refresh_ages_if_due(self, *, force: bool) -> None:
        # Piggy-back on a batch: both dataChanged land in one paint. The timer only
        # refreshes on its own when no batch came for a whole tick (an idle fleet).
        now_s = self._monotonic()
        if now_s - self._last_age_refresh_s < (_AGE_TICK_S if force else _AGE_TICK_S * 0.9):
            return
        self._last_age_refresh_s = now_s
        self.model.refresh_ages(self._wall_clock())

    def _as_of(self) -> float | None:
        """While disconnected: when the table last heard from the collector."""
        return None if self.model.connected else self._last_batch_at

    def _show_state(self, state: LinkState) -> None:
        now_s = self._monotonic()
        self.connection_label.show_state(state, now_s)
        was_connected = self.model.connected
        self.model.set_connected(state.phase is Phase.CONNECTED)
        if was_connected != self.model.connected:
            # A bright selection while disconnected reads as live: grey it like the rows.
            self.table.setStyleSheet("" if self.model.connected else _DISCONNECTED_SELECTION)
            self.update_counts()
            row = None if self._selected_node_id is None else self.model.node(self._selected_node_id)
            if row is not None:
                self.detail.update_facts(row, self._wall_clock(), self._as_of(), self.model.server_offset_s)
        self._update_banner(state, now_s)

    def _update_banner(self, state: LinkState, now_s: float) -> None:
        self.banner.show_banner(
            banner(
                state,
                now_s,
                collector_url=self._collector_url,
                rows=self.model.rowCount(),
                as_of_at=self._last_batch_at,
                refused_nodes=self.model.refused_nodes,
                max_rows=self.model.max_rows,
            )
        )

    def update_counts(self) -> None:
        """Refresh the status bar's counts and "N of M shown"."""
        text = counts_text(self.model.state_counts(), self._as_of())
        if self.counts_label.text() != text:
            self.counts_label.setText(text)
        self.filter_bar.set_counts(self.proxy.node_count(), self.model.rowCount())
        self._update_banner(self._link.state, self._monotonic())
