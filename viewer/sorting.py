"""``NodeSortFilterModel``: the node table in display order (sorted, filtered), over a ``NodeTableModel``.

Why not QSortFilterProxyModel (measured with bench/viewer_stall.py and a probe of
2,000 rows): sorted by a live column such as CPU, every batch made it re-sort the
dataChanged range from C++, calling Python ``data()`` twice per comparison: 120-160 ms
per batch, a frozen window. It also answers ``multiData`` with one Python ``data()`` per
role. Here the order is a Python list: re-sorting 2,000 rows with ``sorted()`` takes a
few milliseconds, a paint costs one Python call per cell, and the view keeps its
selection through ``layoutChanged`` with persistent indexes (never a reset).

Behaviour: sort by any column (numbers by value, unmeasured last, ties by node id;
by default State descending: problems first), filter with a ``viewer.filtering.NodeFilter``
(re-checked for the rows each batch changes). New figures move rows at most once a
second (``RESORT_INTERVAL_S``); a user's sort, filter or release moves them at once.
While ``held`` (pointer over the table, or frozen by the user) the order does not move:
changed rows repaint in place and new rows wait at the bottom until the hold ends.
Rows appear, vanish and change through insert/remove/dataChanged signals like any model.
UI thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleDataSpan,
    QObject,
    Qt,
    QTimer,
)

from viewer.cells import COLUMN_COUNT, Column
from viewer.filtering import NodeFilter
from viewer.model import AnyIndex, NodeTableModel, runs_descending

# A live sort (CPU, ...) moves rows at most once a second, like top's refresh: rows that jump
# every 100 ms make clicks land on the wrong node, and each move repaints the whole viewport.
RESORT_INTERVAL_S: Final = 1.0
# Beyond this many changed rows in one batch, one min..max dataChanged is cheaper than many.
_MAX_RUNS = 400


class NodeSortFilterModel(QAbstractTableModel):
    """The rows of a ``NodeTableModel`` that pass the filter, in sort order."""

    def __init__(
        self,
        source: NodeTableModel,
        parent: QObject | None = None,
        clock: Callable[[], float] = time.monotonic,
        resort_interval_s: float = RESORT_INTERVAL_S,
    ) -> None:
        super().__init__(parent)
        self._source = source
        self._clock = clock
        self._resort_interval_s = resort_interval_s
        self._last_live_resort_s = float("-inf")
        # The live re-sort runs from this timer, in an event-loop turn of its own: inline, its sort of
        # 10,000 rows and layoutChanged rode on a batch slice's apply (20-35 ms in one turn,
        # bench/viewer_stall.py --replay --trace). 0 ms when due, else the rest of the interval.
        self._resort_timer = QTimer(self)
        self._resort_timer.setSingleShot(True)
        self._resort_timer.timeout.connect(self._on_resort_timer)
        self._sort_column = int(Column.STATE)
        self._descending = True
        self._filter = NodeFilter("")
        self._held = False
        # Sort keys by source row for the current column, and each row's rank in node-id order:
        # a batch recomputes only its changed rows' keys (~200 of 2,000), and skips the sort if none moved.
        self._keys: dict[int, tuple[bool, float | str, int]] = {}
        self._ranks: dict[int, int] = {}
        self._by_node: list[int] = []  # source rows in node-id order; valid while ``_ranks`` is
        self._order: list[int] = []  # view row -> source row
        self._view_row: dict[int, int] = {}  # source row -> view row, for visible rows only
        # True while rows are being removed: the view then moves its current index to a
        # neighbour, which the window must not take for the user's choice.
        self.removing = False
        source.dataChanged.connect(self._on_source_data_changed)
        source.rowsInserted.connect(self._on_source_rows_inserted)
        source.rowsAboutToBeRemoved.connect(self._on_source_rows_about_to_be_removed)
        source.rowsRemoved.connect(self._on_source_rows_removed)
        source.modelReset.connect(self._on_source_reset)
        self._on_source_reset()

    # -- Qt model interface -----------------------------------------------------------------

    def rowCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """Visible rows; a table has no children."""
        return 0 if parent is not None and parent.isValid() else len(self._order)

    def columnCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """The source's columns."""
        return 0 if parent is not None and parent.isValid() else COLUMN_COUNT

    def index(self, row: int, column: int, parent: AnyIndex | None = None) -> QModelIndex:
        """An index without QAbstractTableModel's two virtual calls per index."""
        if (parent is not None and parent.isValid()) or not (
            0 <= row < len(self._order) and 0 <= column < COLUMN_COUNT
        ):
            return QModelIndex()
        return self.createIndex(row, column)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """The source cell's data."""
        row = index.row()
        if not 0 <= row < len(self._order):
            return None
        return self._source.cell_data(self._order[row], index.column(), role)

    def multiData(self, index: QModelIndex, roleDataSpan: QModelRoleDataSpan | None) -> None:  # noqa: N802, N803 - Qt's names
        """Every role a delegate asks for, in one Python call per cell.

        Every role is set, None included: the delegate reuses its role data from cell to cell
        (QStyledItemDelegate keeps one array), so a role left unset shows the previous cell's value.
        """
        row = index.row()
        if roleDataSpan is None or not 0 <= row < len(self._order):
            return
        source_row, column, cell_data = self._order[row], index.column(), self._source.cell_data
        for position in range(len(roleDataSpan)):
            role_data = roleDataSpan[position]
            role_data.setData(cell_data(source_row, column, role_data.role()))

    def headerData(  # noqa: N802 - Qt's name
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        """The source's column titles."""
        return self._source.headerData(section, orientation, role)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` (QTableView calls this when a header is clicked)."""
        self._sort_column = column if 0 <= column < COLUMN_COUNT else int(Column.NODE)
        self._descending = order is Qt.SortOrder.DescendingOrder
        self._keys.clear()
        self._resort(force=True)  # the user asked: even over the table (held), the header click sorts

    # -- what the window uses ---------------------------------------------------------------

    def set_held(self, held: bool) -> None:
        """Hold the row order still (or let it move again, re-sorting at once)."""
        if held == self._held:
            return
        self._held = held
        if not held:
            self._resort()

    def set_filter(self, node_filter: NodeFilter) -> None:
        """Show only the nodes ``node_filter`` accepts."""
        self._filter = node_filter
        wanted = {row for row in range(self._source.rowCount()) if self._accepts(row)}
        gone = [source_row for source_row in self._order if source_row >= 0 and source_row not in wanted]
        self._hide(gone)
        self._show(sorted(wanted.difference(self._view_row)))
        self._resort(force=True)  # typed by the user: rows it brings back go in place, not at the bottom

    def mapToSource(self, index: AnyIndex) -> QModelIndex:  # noqa: N802 - the proxy-model name people expect
        """The source index of a view index."""
        if not index.isValid() or not 0 <= index.row() < len(self._order):
            return QModelIndex()
        return self._source.index(self._order[index.row()], index.column())

    def mapFromSource(self, index: AnyIndex) -> QModelIndex:  # noqa: N802 - the proxy-model name people expect
        """The view index of a source index (invalid if filtered out)."""
        row = self._view_row.get(index.row()) if index.isValid() else None
        return QModelIndex() if row is None else self.createIndex(row, index.column())

    def node_ids(self) -> list[str]:
        """The visible node ids in display order."""
        return [self._source.node_id_at(row) for row in self._order if row >= 0]

    def node_count(self) -> int:
        """Nodes the filter keeps ("N of M shown"): the view's rows, less any group headers."""
        return len(self._order)

    # -- source signals ------------------------------------------------------------------------

    def _on_source_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
        first_col, last_col = top_left.column(), bottom_right.column()
        exact = self._source.changed_rows
        # Node ids never change in place, so sorting by node needs no re-sort.
        moved = False
        if first_col <= self._sort_column <= last_col and self._sort_column != Column.NODE:
            if exact is None:
                self._keys.clear()
                moved = True
            else:
                moved = self._rekey(exact)
        if not self._filter.empty and exact is not None:  # a batch: its rows may now pass or fail the filter
            self._hide([row for row in exact if row in self._view_row and not self._accepts(row)])
            self._show(sorted(row for row in exact if row not in self._view_row and self._accepts(row)))
        if moved:
            self._live_resort()
        if exact is None:  # a column for every row ("last seen" each second): one range, no 10,000-row walk
            if self._order:
                self.dataChanged.emit(self.index(0, first_col), self.index(len(self._order) - 1, last_col))
            return
        rows = sorted(row for row in map(self._view_row.get, exact) if row is not None)
        if not rows:
            return
        if len(rows) > _MAX_RUNS:
            self.dataChanged.emit(self.index(rows[0], first_col), self.index(rows[-1], last_col))
            return
        # One dataChanged per run of adjacent view rows: the view repaints those rows only,
        # not every visible row between the first and the last change (measured: ~3x cheaper paints).
        for first, last in runs_descending(rows[::-1]):
            self.dataChanged.emit(self.index(first, first_col), self.index(last, last_col))

    def _on_source_rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._keys.clear()
        self._ranks.clear()
        self._show([row for row in range(first, last + 1) if self._accepts(row)])

    def _on_source_rows_about_to_be_removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._hide([row for row in range(first, last + 1) if row in self._view_row])

    def _on_source_rows_removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        removed = last - first + 1
        self._keys.clear()
        self._ranks.clear()
        self._order = [row - removed if row > last else row for row in self._order]
        self._view_row = {source_row: view_row for view_row, source_row in enumerate(self._order)}

    def _on_source_reset(self) -> None:
        self._keys.clear()
        self._ranks.clear()
        self.beginResetModel()
        self._order = self._sorted([row for row in range(self._source.rowCount()) if self._accepts(row)])
        self._view_row = {source_row: view_row for view_row, source_row in enumerate(self._order)}
        self.endResetModel()

    # -- internals -------------------------------------------------------------------------------

    def _accepts(self, source_row: int) -> bool:
        return self._filter.empty or self._filter(self._source.row_at(source_row))

    def _show(self, source_rows: Iterable[int]) -> None:
        """Append ``source_rows`` (one insert), then move them to their sorted places."""
        new_rows = list(source_rows)
        if not new_rows:
            return
        first = len(self._order)
        self.beginInsertRows(QModelIndex(), first, first + len(new_rows) - 1)
        for offset, source_row in enumerate(new_rows):
            self._order.append(source_row)
            self._view_row[source_row] = first + offset
        self.endInsertRows()
        self._resort()

    def _hide(self, source_rows: Iterable[int]) -> None:
        """Remove the view rows of ``source_rows``, one contiguous run at a time."""
        view_rows = sorted((self._view_row[row] for row in source_rows), reverse=True)
        if not view_rows:
            return
        self.removing = True
        try:
            for first, last in runs_descending(view_rows):
                self.beginRemoveRows(QModelIndex(), first, last)
                for source_row in self._order[first : last + 1]:
                    del self._view_row[source_row]
                del self._order[first : last + 1]
                self.endRemoveRows()
        finally:
            self.removing = False
        self._view_row = {source_row: view_row for view_row, source_row in enumerate(self._order)}

    def _key(self, source_row: int) -> tuple[bool, float | str, int]:
        """The row's sort key: measured first either way, then the value, then node id ascending."""
        key = self._keys.get(source_row)
        if key is None:
            value = self._source.sort_key(source_row, self._sort_column)
            descending = self._descending
            rank = self._node_ranks()[source_row]
            key = (
                descending if value is not None else not descending,
                0.0 if value is None else value,
                -rank if descending else rank,  # reversed below when descending: node ids still ascend
            )
            self._keys[source_row] = key
        return key

    def _node_ranks(self) -> dict[int, int]:
        """Each source row's rank in node-id order (and ``_by_node``, the rows in that order), cached."""
        if not self._ranks:
            self._by_node = sorted(range(self._source.rowCount()), key=self._source.node_id_at)
            self._ranks = {row: rank for rank, row in enumerate(self._by_node)}
        return self._ranks

    def _rekey(self, source_rows: Iterable[int]) -> bool:
        """Recompute the keys of ``source_rows``; True if any changed."""
        moved = False
        for row in source_rows:  # every key now (no short cut): a batch slice's share, not the re-sort's
            old = self._keys.pop(row, None)
            if old != self._key(row):
                moved = True
        return moved

    def _sorted(self, rows: list[int]) -> list[int]:
        """``rows`` in display order: taken in node-id order, then two stable sorts, by value and by "measured".

        The same order as one sort on the key tuples (node ranks are unique, so no two keys tie),
        but each pass compares plain floats, strings or bools in C instead of tuples: at 10,000 rows
        the once-a-second live re-sort went from ~20 ms to a few (bench/viewer_stall.py --replay).
        Starting from node-id order saves the third pass (by rank): ~6.4 -> ~3.7 ms at 10,000 rows.
        """
        key, known, descending = self._key, self._keys, self._descending
        self._node_ranks()
        by_node = self._by_node
        if len(rows) != len(by_node):  # filtered: the visible rows, still in node-id order
            wanted = set(rows)
            by_node = [row for row in by_node if row in wanted]
        if len(by_node) != len(rows):  # rows that are not source rows (a subclass's): one sort on the tuples
            return sorted(rows, key=key, reverse=descending)
        keys = [known.get(row) or key(row) for row in by_node]  # a call only for the keys not known yet
        values = [row_key[1] for row_key in keys]
        positions = sorted(range(len(keys)), key=values.__getitem__, reverse=descending)  # reverse keeps ties
        flags = [row_key[0] for row_key in keys]  # "measured", as it sorts first either way
        if not all(flags) and any(flags):  # measured and unmeasured rows both: the unmeasured go last
            positions.sort(key=flags.__getitem__, reverse=descending)
        return [by_node[position] for position in positions]

    def _live_resort(self) -> None:
        """Ask for a re-sort after figures changed: in a later turn, at most once per ``resort_interval_s``."""
        wait_s = self._last_live_resort_s + self._resort_interval_s - self._clock()
        if wait_s <= 0:
            self._resort_timer.start(0)  # due: the next turn (sooner than a timer already waiting)
        elif not self._resort_timer.isActive():
            self._resort_timer.start(max(1, round(wait_s * 1000)))

    def _on_resort_timer(self) -> None:
        """The live re-sort, unless the clock says it is not due yet (then wait the rest)."""
        wait_s = self._last_live_resort_s + self._resort_interval_s - self._clock()
        if wait_s > 0:
            self._resort_timer.start(max(1, round(wait_s * 1000)))
            return
        self._last_live_resort_s = self._clock()
        self._resort()

    def _resort(self, *, force: bool = False) -> None:
        """Re-sort the visible rows (unless held, or ``force``: the user's own action); layoutChanged if moved."""
        if self._held and not force:
            return
        new_order = self._sorted(self._order)
        if new_order == self._order:
            return
        self.layoutAboutToBeChanged.emit([], QAbstractTableModel.LayoutChangeHint.VerticalSortHint)
        new_view_row = {source_row: view_row for view_row, source_row in enumerate(new_order)}
        persistent = self.persistentIndexList()
        moved = [
            self.createIndex(new_view_row[self._order[index.row()]], index.column())
            if 0 <= index.row() < len(self._order)
            else QModelIndex()
            for index in persistent
        ]
        self._order, self._view_row = new_order, new_view_row
        self.changePersistentIndexList(persistent, moved)
        self.layoutChanged.emit([], QAbstractTableModel.LayoutChangeHint.VerticalSortHint)
