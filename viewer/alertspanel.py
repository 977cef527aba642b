"""``AlertsPanel``: the firing and unknown alerts of the collector, in a dock under the node table.

One row per alert: rule, severity, node (and mount, sensor or interface), state, since
(local clock) and summary. Clicking a row emits ``node_chosen(node_id)``: the window selects
that node and opens its detail. With none live it says "no alerts firing"; before the
collector sent any alert message on this connection, it says that it has not (an older
collector, or one without ``?alerts=1``), never "no alerts". The table is rebuilt per message,
and the selected alert stays selected (by its key) wherever it moves. Every string is peer data:
cells are model text (never rendered), tooltips go through ``plain_tooltip``.

Not here: which alerts are live (``viewer.alertbook``), the wire (``viewer.alertwire``). UI thread only.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from PyQt6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    pyqtSignal,
)
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QAbstractItemView, QDockWidget, QHeaderView, QTableView, QVBoxLayout, QWidget

from viewer.alertbook import Alert, AlertBook, AlertChange
from viewer.alertwire import AlertKey, AlertNews
from viewer.detail import plain_label
from viewer.format import format_clock, plain_tooltip
from viewer.model import TINT_TEXT

AnyIndex = QModelIndex | QPersistentModelIndex


class AlertColumn(IntEnum):
    """The panel's columns."""

    RULE = 0
    SEVERITY = 1
    NODE = 2
    STATE = 3
    SINCE = 4
    SUMMARY = 5


_HEADERS: Final = ("Rule", "Severity", "Node", "State", "Since", "Summary")
_STATE_WORDS: Final = {"firing": "firing", "unknown": "unknown (node silent)"}
_STATE_BACKGROUND: Final = {"firing": "#f2b0b0", "unknown": "#d9d9d9"}
EMPTY_TEXT: Final = "no alerts firing"
NOT_HEARD_TEXT: Final = "no alert messages from this collector (yet)"


class AlertTableModel(QAbstractTableModel):
    """The shown alerts as a table; rebuilt whole per message (a few per second at most)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Alert] = []
        self._offset_s = 0.0
        self._brushes = {state: QColor(colour) for state, colour in _STATE_BACKGROUND.items()}
        self._tint_text = QColor(TINT_TEXT)

    def set_alerts(self, rows: list[Alert], server_offset_s: float) -> None:
        """Show ``rows``; ``server_offset_s`` turns the collector's times into ours."""
        self.beginResetModel()
        self._rows, self._offset_s = rows, server_offset_s
        self.endResetModel()

    def row_of(self, key: AlertKey) -> int | None:
        """The row showing the alert of ``key``, or None."""
        return next((row for row, alert in enumerate(self._rows) if alert.key == key), None)

    def alert_at(self, row: int) -> Alert | None:
        """The alert of ``row``, or None."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """Shown alerts; a table has no children."""
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """The six columns."""
        return 0 if parent is not None and parent.isValid() else len(AlertColumn)

    def headerData(  # noqa: N802 - Qt's name
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        """Column titles."""
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 6:
            return _HEADERS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """The cell's text, its tooltip, or the State cell's colours (dark text on its tint, in any palette)."""
        alert = self.alert_at(index.row())
        if alert is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(alert, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(self._text(alert, index.column()))
        if index.column() == AlertColumn.STATE and alert.state in self._brushes:
            if role == Qt.ItemDataRole.BackgroundRole:
                return self._brushes[alert.state]
            if role == Qt.ItemDataRole.ForegroundRole:  # the palette's text is light in dark mode
                return self._tint_text
        return None

    def _text(self, alert: Alert, column: int) -> str:
        key = alert.key
        texts = (
            key.alertname,
            alert.severity,
            f"{key.node_id} {key.instance}" if key.instance else key.node_id,
            _STATE_WORDS.get(alert.state, alert.state),
            format_clock(alert.since_at - self._offset_s),
            alert.summary,
        )
        return texts[column]


class AlertsPanel(QWidget):
    """A line of counts over the table of alerts."""

    node_chosen = pyqtSignal(str)
    changes = pyqtSignal(list)  # list[AlertChange]: news, for notifications

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.book = AlertBook()
        self._as_of_at: float | None = None  # while disconnected: when the collector last spoke
        self.summary_label = plain_label()
        self.model = AlertTableModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setWordWrap(False)
        rows = self.view.verticalHeader()
        assert rows is not None
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.view.fontMetrics().height() + 8)  # as the node table's rows
        header = self.view.horizontalHeader()
        assert header is not None
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.view)
        self._show()

    def reset(self) -> None:
        """A new connection: forget what the last one said."""
        self.book.reset()
        self._show()

    def apply(self, news: AlertNews, now_at: float) -> list[AlertChange]:
        """Apply one alert message (``now_at``: our wall clock) and show the result; return the news."""
        changed = self.book.apply(news, now_at)
        self._show()
        if changed:
            self.changes.emit(changed)
        return changed

    def set_as_of(self, as_of_at: float | None) -> None:
        """Disconnected since ``as_of_at`` (our wall clock): the alerts shown may be old; None: live again."""
        if as_of_at != self._as_of_at:
            self._as_of_at = as_of_at
            self._show()

    def shown_alerts(self) -> list[Alert]:
        """The rows, top to bottom."""
        return [alert for row in range(self.model.rowCount()) if (alert := self.model.alert_at(row)) is not None]

    def selected_alert(self) -> Alert | None:
        """The alert selected in the table, or None."""
        selection = self.view.selectionModel()
        chosen = selection.selectedRows() if selection is not None else []
        return self.model.alert_at(chosen[0].row()) if chosen else None

    def _show(self) -> None:
        rows = self.book.shown()
        selected = self.selected_alert()
        self.model.set_alerts(rows, self.book.server_offset_s)
        if selected is not None:  # the reset cleared the selection: put it back on the same alert
            self._select(selected.key)
        if not self.book.heard:
            text = NOT_HEARD_TEXT
        elif not rows:
            text = EMPTY_TEXT
        else:
            firing = sum(alert.state == "firing" for alert in rows)
            text = f"{firing:,} firing · {len(rows) - firing:,} unknown"
        if self._as_of_at is not None:
            text += f" · as of {format_clock(self._as_of_at)} (disconnected)"
        self.summary_label.setText(text)

    def _select(self, key: AlertKey) -> None:
        row, selection = self.model.row_of(key), self.view.selectionModel()
        if row is not None and selection is not None:
            flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            selection.setCurrentIndex(self.model.index(row, AlertColumn.RULE), flags)

    def _on_clicked(self, index: QModelIndex) -> None:
        alert = self.model.alert_at(index.row())
        if alert is not None:
            self.node_chosen.emit(alert.key.node_id)


class AlertsDock(QDockWidget):
    """The panel in a dock titled with its counts, so it says something even when collapsed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Alerts", parent)
        self.setObjectName("alerts_dock")  # QMainWindow.saveState needs a name
        self.panel = AlertsPanel()
        self.setWidget(self.panel)
        features = QDockWidget.DockWidgetFeature
        self.setFeatures(features.DockWidgetMovable | features.DockWidgetFloatable)
