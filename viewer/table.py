"""``NodeTableView``: the node table's view: column widths, header behaviour, hover and a column chooser.

- Widths come from the font (a sample of each column's widest usual text), so State,
  Node and Last seen all fit at the default 1280x760 window; the header's context menu
  hides or shows any column but Node and State.
- ``hover_changed(bool)`` says when the pointer enters or leaves the table: the window
  holds the row order still while it is over the rows, so a click lands where aimed.
- The first click on a metric header sorts descending (the model's InitialSortOrderRole).
- A selected row keeps its State cell's colour (``StateDelegate``).
- A paint is one Python call (``OnePassTableView``), so it takes the GIL once, not once per cell.

Not here: what the cells say (``viewer.model``) or the order (``viewer.sorting``). UI thread only.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import QEvent, QModelIndex, QPoint, Qt, pyqtSignal
from PyQt6.QtGui import QAction, QEnterEvent, QFontMetrics, QPaintEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from viewer.cells import HEADERS, THRESHOLD_COLUMNS, Column

# The widest text each column usually shows (bold, with a mark, at a threshold); the header title counts too.
# "▲ 100.0 %" is as wide as a critical "▲▲ 95.0 %".
_SAMPLE_TEXT: Final[dict[Column, str]] = {
    Column.NODE: "web-0123.example",
    Column.STATE: "offline",
    Column.CPU: "▲ 100.0 %",
    Column.LOAD: "▲ 10.00 10.00 10.00",
    Column.MEMORY: "▲ 100.0 %",
    Column.DISK: "▲ 100.0 %",
    Column.NET: "↓ 1023 KiB/s  ↑ 1023 KiB/s",
    Column.UPTIME: "30 d 23 h",
    Column.LAST_SEEN: "59 m ago",
}
# Room for the cell's margins, and in a header also for the sort arrow.
_PADDING_PX: Final = 18
_CELL_PADDING_PX: Final = 10
_ALWAYS_SHOWN: Final = frozenset({Column.NODE, Column.STATE})


class StateDelegate(QStyledItemDelegate):
    """Paints the State cell in its state colour even when its row is selected: the highlight hid it."""

    def initStyleOption(self, option: QStyleOptionViewItem | None, index: QModelIndex) -> None:  # noqa: N802 - Qt's name
        """Qt's options, minus "selected"."""
        super().initStyleOption(option, index)
        if option is not None:
            option.state &= ~QStyle.StateFlag.State_Selected


class OnePassTableView(QTableView):
    """A table view whose paint runs inside one Python call, holding the GIL from the first cell to the last.

    Qt asks the Python model for every visible cell (``multiData``, ~300 per paint). Called
    straight from Qt's event loop each of those calls must take the GIL, and while the network
    thread decodes a frame each waits up to ``sys.getswitchinterval()`` (5 ms) for it: a paint of
    a 10,000-node table then took up to ~1 s (bench/viewer_stall.py --trace: late ticks with
    a paint and little CPU). Entered from this override, the cells re-enter with the GIL held.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        header = OnePassHeaderView(Qt.Orientation.Horizontal, self)
        header.setSectionsClickable(True)  # as QTableView sets up its own header
        header.setHighlightSections(True)
        self.setHorizontalHeader(header)

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt's name
        """Qt's paint, called from Python (see the class docstring)."""
        super().paintEvent(event)


class OnePassHeaderView(QHeaderView):
    """A header whose paint is one Python call: each section's title is a Python ``headerData``."""

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt's name
        """Qt's paint, called from Python (see ``OnePassTableView``)."""
        super().paintEvent(event)


class NodeTableView(OnePassTableView):
    """The table of nodes, one row per node, whole rows selected."""

    hover_changed = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        rows = self.verticalHeader()
        assert rows is not None
        rows.setVisible(False)
        # Every row the same height: the view never asks the model to measure rows.
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self._state_delegate = StateDelegate(self)
        self.setItemDelegateForColumn(Column.STATE, self._state_delegate)

    def configure_columns(self) -> None:
        """Widths from the font, State first, the chooser in the header menu; call after ``setModel``."""
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        bold = self.font()
        bold.setBold(True)  # a figure at a threshold is bold
        bold_metrics, metrics = QFontMetrics(bold), header.fontMetrics()
        for column, sample in _SAMPLE_TEXT.items():
            cell = (bold_metrics if column in THRESHOLD_COLUMNS else metrics).horizontalAdvance(sample)
            title = metrics.horizontalAdvance(HEADERS[column])
            header.resizeSection(column, max(cell + _CELL_PADDING_PX, title + _PADDING_PX))
        header.moveSection(header.visualIndex(Column.STATE), 0)  # state first, as colour and text
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._show_column_menu)

    def columns_width(self) -> int:
        """Pixels the visible columns need side by side (at their set widths)."""
        header = self.horizontalHeader()
        assert header is not None
        return sum(header.sectionSize(column) for column in Column if not self.isColumnHidden(column))

    def column_menu(self) -> QMenu:
        """A menu of checkable columns (Node and State always stay)."""
        menu = QMenu(self)
        for column in Column:
            if column in _ALWAYS_SHOWN:
                continue
            action = QAction(HEADERS[column], menu)
            action.setCheckable(True)
            action.setChecked(not self.isColumnHidden(column))
            action.toggled.connect(lambda shown, c=column: self.setColumnHidden(c, not shown))
            menu.addAction(action)
        return menu

    def _show_column_menu(self, position: QPoint) -> None:
        header = self.horizontalHeader()
        assert header is not None
        self.column_menu().exec(header.mapToGlobal(position))

    def enterEvent(self, event: QEnterEvent | None) -> None:  # noqa: N802 - Qt's name
        """The pointer came over the table: the order should hold still."""
        self.hover_changed.emit(True)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent | None) -> None:  # noqa: N802 - Qt's name
        """The pointer left the table: the order may move again."""
        self.hover_changed.emit(False)
        super().leaveEvent(event)
