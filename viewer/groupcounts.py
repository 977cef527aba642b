"""``GroupCountsDelegate``: a group header's state counts stay in view while the table scrolls sideways.

The counts are one cell spanned from CPU to Last seen (``viewer.windowparts``). Drawn as Qt
draws a cell, their text starts at the span's left edge and scrolls out of view under the
frozen State and Node overlay (``viewer.frozen``). This delegate draws the span from the first
pixel right of the overlay instead, so the counts read like a sticky header; the overlay and
the span's cells are unchanged. Sideways scrolling repaints the viewport, since Qt would
otherwise move the old pixels and leave the text where it was.

Not here: what the counts say (``viewer.grouping``), the spans themselves. UI thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import QModelIndex, QRect
from PyQt6.QtGui import QPainter
from PyQt6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem, QTableView

from viewer.cells import Column
from viewer.grouping import GroupedSortFilterModel


def visible_part(span: QRect, hidden_px: int) -> QRect:
    """The part of ``span`` (viewport coordinates) right of the first ``hidden_px`` pixels, if any is left."""
    if span.left() >= hidden_px or span.right() < hidden_px:
        return QRect(span)
    return QRect(hidden_px, span.top(), span.right() - hidden_px + 1, span.height())


class GroupCountsDelegate(QStyledItemDelegate):
    """Draws a header row's CPU cell (the counts' span) right of the frozen overlay; node rows as usual."""

    def __init__(self, table: QTableView, model: GroupedSortFilterModel, hidden_px: Callable[[], int]) -> None:
        super().__init__(table)
        self._model = model
        self._hidden_px = hidden_px
        table.setItemDelegateForColumn(Column.CPU, self)
        bar, viewport = table.horizontalScrollBar(), table.viewport()
        assert bar is not None
        assert viewport is not None
        bar.valueChanged.connect(lambda _value: viewport.update() if self._model.group_key is not None else None)

    def paint(self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        """Paint the cell; a group header's counts from the first pixel the overlay does not cover."""
        if self._model.is_header(index.row()):
            moved = QStyleOptionViewItem(option)
            moved.rect = visible_part(option.rect, self._hidden_px())
            option = moved
        super().paint(painter, option, index)
