"""``FrozenColumns``: State and Node stay in view while the node table scrolls sideways.

Qt's "frozen column" example (qtbase ``examples/widgets/itemviews/frozencolumn``): a second
``QTableView`` over the table's left edge, sharing its model and its selection model, that
shows only the frozen columns, follows the table's vertical scrolling, row height and column
widths, and never scrolls sideways. The table keeps those columns too (under the overlay),
so its header and sorting work unchanged; a click on the overlay selects in the shared
selection model, exactly as a click on the table.

Not here: what cells say, or which columns exist (``viewer.cells``). UI thread only.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import QEvent, QObject, Qt
from PyQt6.QtWidgets import QAbstractItemView, QFrame, QHeaderView, QTableView

from viewer.cells import Column
from viewer.table import OnePassTableView

FROZEN: Final = (Column.STATE, Column.NODE)  # left to right, as the table shows them


class FrozenColumns(QObject):
    """The overlay of one table, kept in step with it."""

    def __init__(self, table: QTableView) -> None:
        super().__init__(table)
        self._table = table
        view = self.view = OnePassTableView(table)
        view.setObjectName("frozen_columns")
        view.setModel(table.model())
        view.setSelectionModel(table.selectionModel())
        view.setSelectionBehavior(table.selectionBehavior())
        view.setSelectionMode(table.selectionMode())
        view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setFrameShape(QFrame.Shape.NoFrame)
        view.setAlternatingRowColors(table.alternatingRowColors())
        view.setWordWrap(False)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        view.setVerticalScrollMode(table.verticalScrollMode())
        delegate = table.itemDelegateForColumn(Column.STATE)
        if delegate is not None:
            view.setItemDelegateForColumn(Column.STATE, delegate)
        rows, own_rows = table.verticalHeader(), view.verticalHeader()
        header, own_header = table.horizontalHeader(), view.horizontalHeader()
        assert rows is not None
        assert own_rows is not None
        assert header is not None
        assert own_header is not None
        own_rows.setVisible(False)
        own_rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        own_rows.setDefaultSectionSize(rows.defaultSectionSize())
        own_header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        own_header.setSortIndicatorShown(True)
        own_header.setSectionsClickable(True)
        own_header.sectionClicked.connect(self._sort_like_table)
        header.sortIndicatorChanged.connect(own_header.setSortIndicator)
        header.sectionResized.connect(self._on_section_resized)
        header.sectionMoved.connect(lambda *_: self.sync_columns())
        header.geometriesChanged.connect(self.place)
        table_bar, own_bar = table.verticalScrollBar(), view.verticalScrollBar()
        assert table_bar is not None
        assert own_bar is not None
        table_bar.valueChanged.connect(own_bar.setValue)
        own_bar.valueChanged.connect(table_bar.setValue)
        for own, tables in ((view.activated, table.activated), (view.clicked, table.clicked)):
            own.connect(tables)  # a click or Enter on the overlay is one on the table
        self.sync_columns()
        view.show()
        table.installEventFilter(self)

    def frozen_width(self) -> int:
        """Pixels the frozen columns take."""
        header = self._table.horizontalHeader()
        assert header is not None
        return sum(header.sectionSize(column) for column in FROZEN)

    def sync_columns(self) -> None:
        """Show only the frozen columns, in the table's order and widths."""
        view, header = self.view, self.view.horizontalHeader()
        table_header = self._table.horizontalHeader()
        assert header is not None
        assert table_header is not None
        for column in range(header.count()):
            view.setColumnHidden(column, column not in FROZEN)
        for position, column in enumerate(FROZEN):
            header.moveSection(header.visualIndex(column), position)
            header.resizeSection(column, table_header.sectionSize(column))
        header.setSortIndicator(table_header.sortIndicatorSection(), table_header.sortIndicatorOrder())
        self.place()

    def place(self) -> None:
        """Lay the overlay over the table's left edge, below nothing, beside nothing."""
        table = self._table
        frame = table.frameWidth()
        rows = table.verticalHeader()
        header = table.horizontalHeader()
        assert rows is not None
        assert header is not None
        viewport = table.viewport()
        height = (viewport.height() if viewport is not None else 0) + header.height()
        self.view.setGeometry(rows.width() + frame, frame, self.frozen_width(), height)

    def _on_section_resized(self, column: int, _old: int, new: int) -> None:
        if column in FROZEN:
            header = self.view.horizontalHeader()
            assert header is not None
            header.resizeSection(column, new)
            self.place()

    def _sort_like_table(self, column: int) -> None:
        """A click on the overlay's header sorts as a click on the table's would (QHeaderView's rule)."""
        header, model = self._table.horizontalHeader(), self._table.model()
        assert header is not None
        assert model is not None
        if header.sortIndicatorSection() == column:
            ascending = header.sortIndicatorOrder() is Qt.SortOrder.AscendingOrder
            order = Qt.SortOrder.DescendingOrder if ascending else Qt.SortOrder.AscendingOrder
        else:
            initial = model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.InitialSortOrderRole)
            order = initial if isinstance(initial, Qt.SortOrder) else Qt.SortOrder.AscendingOrder
        self._table.sortByColumn(column, order)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802 - Qt's name
        """The table was resized: the overlay follows its height."""
        if watched is self._table and event is not None and event.type() is QEvent.Type.Resize:
            self.place()
        return False
