"""``WindowParts``: what the main window has beyond its table and pane, wired to it.

- the keyboard shortcuts (Ctrl+F, Esc, Ctrl+Q, Z and Space);
- the alerts dock (``viewer.alertspanel``): a click on an alert selects its node in the table
  (expanding its group if collapsed) and so opens its detail;
- desktop notifications (``viewer.notifications``), toggled in the View menu;
- grouping by a label (``viewer.grouping``): the filter bar's "Group by" choice, the header
  rows' spans and clicks (a click on a header collapses or expands its group), and the label
  keys offered, taken from the facts as batches bring them;
- the frozen State and Node columns (``viewer.frozen``), and the header rows' counts drawn right
  of them when the table scrolls sideways (``viewer.groupcounts``).

Not here: the table's own behaviour (``viewer.window``). UI thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from PyQt6.QtCore import QModelIndex, QObject, QSettings, Qt
from PyQt6.QtGui import QKeySequence, QShortcut

from viewer.alertspanel import AlertsDock
from viewer.alertwire import AlertNews
from viewer.batching import NodeBatch
from viewer.cells import COLUMN_COUNT, Column
from viewer.frozen import FrozenColumns
from viewer.groupcounts import GroupCountsDelegate
from viewer.linkstate import LinkState, Phase
from viewer.notifications import Notifier

if TYPE_CHECKING:
    from viewer.window import MainWindow

# Spans cost QTableView a look-up per painted cell per span: past this many groups, headers go unspanned.
MAX_SPANNED_GROUPS: Final = 500
ALERTS_DOCK_PX: Final = 150
HIDDEN_BY_FILTER: Final = "{node} is hidden by the filter"


class WindowParts(QObject):
    """Builds the parts on ``window`` and keeps them in step with its link and table."""

    def __init__(
        self, window: MainWindow, settings: QSettings | None, wall_clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(window)
        self._window = window
        self._wall_clock = wall_clock
        self._label_keys: set[str] = set()
        self._spanned = False
        self._heard_at: float | None = None  # our wall clock when the collector last spoke
        self._add_shortcuts()
        self.alerts_dock = AlertsDock(window)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.alerts_dock)
        # A few alerts' height: the node table stays the main thing (the user may drag it taller).
        window.resizeDocks([self.alerts_dock], [ALERTS_DOCK_PX], Qt.Orientation.Vertical)
        self.alerts = self.alerts_dock.panel
        self.notifier = Notifier(settings, parent=self)
        self.alerts.changes.connect(self.notifier.notify)
        self.alerts.node_chosen.connect(self.show_node)
        menu_bar = window.menuBar()
        assert menu_bar is not None
        view_menu = menu_bar.addMenu("&View")
        assert view_menu is not None
        view_menu.addAction(self.alerts_dock.toggleViewAction())
        view_menu.addAction(self.notifier.action)
        self.frozen = FrozenColumns(window.table)
        proxy = window.proxy
        self.group_counts = GroupCountsDelegate(window.table, proxy, self.frozen.frozen_width)
        for signal in (proxy.layoutChanged, proxy.rowsInserted, proxy.rowsRemoved, proxy.modelReset):
            signal.connect(self._refresh_spans)
        window.filter_bar.group_changed.connect(self._on_group)
        window.table.clicked.connect(self._on_table_clicked)
        window.link.alerts_ready.connect(self._on_alerts)
        window.link.batch_ready.connect(self._on_batch)
        window.link.state_changed.connect(self._on_link_state)

    def _add_shortcuts(self) -> None:
        window = self._window
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("Ctrl+F", window.focus_filter),
            ("Escape", window.filter_box.clear),
            ("Ctrl+Q", window.close),
            ("Z", window.toggle_freeze),
            ("Space", window.toggle_freeze),
        ]
        for keys, slot in bindings:
            shortcut = QShortcut(QKeySequence(keys), window)
            shortcut.activated.connect(slot)

    def show_node(self, node_id: str) -> bool:
        """Select ``node_id`` in the table (its detail opens); False, and a word in the panel, if hidden."""
        window = self._window
        window.proxy.expand_group_of(node_id)
        if not window.select_node(node_id):
            self.alerts.summary_label.setText(HIDDEN_BY_FILTER.format(node=node_id))
            return False
        window.table.scrollTo(window.table.currentIndex())
        return True

    def _on_alerts(self, news: AlertNews) -> None:
        self._heard_at = self._wall_clock()
        self.alerts.apply(news, self._wall_clock())

    def _on_link_state(self, state: LinkState) -> None:
        self._heard_at = self._wall_clock() if state.phase is Phase.CONNECTED else self._heard_at
        self.alerts.set_as_of(None if state.phase is Phase.CONNECTED else self._heard_at)

    def _on_batch(self, batch: NodeBatch) -> None:
        self._heard_at = self._wall_clock()
        if batch.is_snapshot:
            self.alerts.reset()  # the alerts message that follows says what is live now
            model = self._window.model
            rows = (model.row_at(position) for position in range(model.rowCount()))
            self._label_keys = {key for row in rows if row.facts and row.facts.labels for key in row.facts.labels}
        else:
            for entry in batch.entries.values():
                if entry.facts is not None and entry.facts.labels:
                    self._label_keys.update(entry.facts.labels)
        self._window.filter_bar.set_label_keys(self._label_keys)

    def _on_group(self, key: str) -> None:
        self._window.proxy.set_group_key(key or None)
        self._refresh_spans()
        self._window.update_counts()

    def _on_table_clicked(self, index: QModelIndex) -> None:
        name = self._window.proxy.group_of_view_row(index.row())
        if name is not None:
            self._window.proxy.toggle_group(name)
            self._window.update_counts()

    def _refresh_spans(self) -> None:
        """Each group header's counts span the metric columns (CPU to Last seen: in order on screen)."""
        proxy, table = self._window.proxy, self._window.table
        if proxy.group_key is None and not self._spanned:
            return
        table.clearSpans()
        header_rows = proxy.header_rows() if proxy.group_key is not None else []
        for view_row in header_rows[:MAX_SPANNED_GROUPS]:
            table.setSpan(view_row, Column.CPU, 1, COLUMN_COUNT - Column.CPU)
        self._spanned = bool(header_rows)
