"""``NodeTableModel``: the fleet as a Qt table model, changed in place one batch at a time.

A batch from ``CollectorLink`` becomes at most: row removals, ONE ``dataChanged`` over the
rows that changed (min..max), and one row insertion at the end. There is never a model
reset, so a snapshot after a reconnect keeps the view's selection and scroll position.
The "last seen" column ticks with ``refresh_ages()``, which signals that column only.
Rows are capped (``MAX_ROWS``): a hostile collector cannot grow the viewer without bound,
and ``refused_nodes`` counts what the cap turned away, for the window to say so.

Not here: what a cell says (``viewer.cells``), timers, sockets or widgets; time comes in
as an argument (``now_at``). UI thread only, like every Qt model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PyQt6.QtGui import QColor, QFont

from shared.messages import NodeState
from viewer.batching import NodeBatch
from viewer.cells import (
    COLUMN_COUNT,
    HEADERS,
    METRIC_COLUMNS,
    Column,
    NodeRow,
    bounded_history,
    display_strings,
    is_dimmed,
    sort_key,
    tooltip,
)
from viewer.format import format_age, plain_tooltip
from viewer.thresholds import Level

AnyIndex = QModelIndex | QPersistentModelIndex

# Twice the 10,000-node fleet the viewer is measured at; beyond it, new nodes are refused (and counted).
MAX_ROWS: Final = 20_000
# Numeric sort keys (the proxy sorts by this role, so "9.0 %" < "10.0 %").
SORT_ROLE: Final = Qt.ItemDataRole.UserRole + 1
# The node id of any cell's row, so views and proxies never parse display text.
NODE_ID_ROLE: Final = Qt.ItemDataRole.UserRole + 2

_STATE_BACKGROUND: Final[dict[str, str]] = {"online": "#bfe8bf", "stale": "#ffe08a", "offline": "#f2b0b0"}
_DISCONNECTED_BACKGROUND: Final = "#d9d9d9"
# Threshold tints, lighter than the State colours; dark text on them reads in light and dark palettes.
_LEVEL_BACKGROUND: Final[dict[Level, str]] = {Level.WARNING: "#ffe9a8", Level.CRITICAL: "#ffb8b8"}
# The text on every light tint (State, thresholds, the alerts panel's State): a dark palette's light
# text on them is unreadable (contrast ~1.3:1), this is over 10:1 on each (tests/viewer/test_contrast.py).
TINT_TEXT: Final = "#1a1a1a"
_GREYED_TEXT: Final = "#8c8c8c"
_RIGHT_ALIGNED: Final = METRIC_COLUMNS
# Roles a QTableView asks for on every paint that this model never serves: answered first, cheaply.
_DISPLAY: Final = int(Qt.ItemDataRole.DisplayRole)
_FOREGROUND: Final = int(Qt.ItemDataRole.ForegroundRole)
_BACKGROUND: Final = int(Qt.ItemDataRole.BackgroundRole)
_ALIGNMENT: Final = int(Qt.ItemDataRole.TextAlignmentRole)
_TOOLTIP: Final = int(Qt.ItemDataRole.ToolTipRole)
_FONT: Final = int(Qt.ItemDataRole.FontRole)
_INITIAL_SORT: Final = int(Qt.ItemDataRole.InitialSortOrderRole)
_LOOK_ROLES: Final = frozenset({_FOREGROUND, _BACKGROUND, _FONT})
_SERVED_ROLES: Final = frozenset(
    {_DISPLAY, _FOREGROUND, _BACKGROUND, _ALIGNMENT, _TOOLTIP, _FONT, SORT_ROLE, NODE_ID_ROLE}
)


class NodeTableModel(QAbstractTableModel):
    """The node table; ``apply_batch`` is the only way rows change."""

    def __init__(self, parent: QObject | None = None, max_rows: int = MAX_ROWS) -> None:
        super().__init__(parent)
        self._max_rows = max_rows
        # Entries for new nodes turned away by the cap since the last snapshot (here or in the link).
        self.refused_nodes = 0
        self._rows: list[NodeRow] = []
        self._row_of: dict[str, int] = {}
        self._connected = True
        self._now_at = 0.0  # local wall clock of the last apply/tick
        self._server_offset_s = 0.0  # collector wall clock minus ours, from server_time_at
        # While apply_batch emits its one dataChanged(min..max): the rows that really changed.
        self.changed_rows: frozenset[int] | None = None
        # Kept up to date in apply_batch: counting 2,000 rows per batch cost ~1.5 ms.
        self._state_counts: Counter[str] = Counter()
        self._state_brushes = {state: QColor(colour) for state, colour in _STATE_BACKGROUND.items()}
        self._disconnected_brush = QColor(_DISCONNECTED_BACKGROUND)
        self._state_text = QColor(TINT_TEXT)
        self._greyed_text = QColor(_GREYED_TEXT)
        self._level_brushes = {level: QColor(colour) for level, colour in _LEVEL_BACKGROUND.items()}
        self._bold = QFont()
        self._bold.setBold(True)
        self._alignment = [
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter if column in _RIGHT_ALIGNED else None
            for column in Column
        ]

    # -- Qt model interface -------------------------------------------------------------

    def rowCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """Number of nodes; a table has no children."""
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex | None = None) -> int:  # noqa: N802 - Qt's name
        """Number of columns; a table has no children."""
        return 0 if parent is not None and parent.isValid() else COLUMN_COUNT

    def index(self, row: int, column: int, parent: AnyIndex | None = None) -> QModelIndex:
        """Like QAbstractTableModel.index, without its two virtual calls (rowCount, columnCount) per index."""
        if (parent is not None and parent.isValid()) or not (0 <= row < len(self._rows) and 0 <= column < COLUMN_COUNT):
            return QModelIndex()
        return self.createIndex(row, column)

    def headerData(  # noqa: N802 - Qt's name
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        """Column titles; rows have none."""
        if orientation is Qt.Orientation.Horizontal and 0 <= section < COLUMN_COUNT:
            if role == _DISPLAY:
                return HEADERS[Column(section)]
            if role == _INITIAL_SORT:  # a first click on a metric shows the busiest nodes first
                return Qt.SortOrder.DescendingOrder if section in METRIC_COLUMNS else Qt.SortOrder.AscendingOrder
            if role == _ALIGNMENT:
                return self._alignment[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """The cell's text, sort key, colours, alignment or tooltip."""
        return self.cell_data(index.row(), index.column(), role)

    def multiData(self, index: QModelIndex, roleDataSpan: QModelRoleDataSpan | None) -> None:  # noqa: N802, N803 - Qt's names
        """Every role a delegate asks for, in one Python call instead of one per role (Qt 6)."""
        if roleDataSpan is None:
            return
        position, column = index.row(), index.column()
        for slot in range(len(roleDataSpan)):
            role_data = roleDataSpan[slot]
            role_data.setData(self.cell_data(position, column, role_data.role()))

    def cell_data(self, position: int, column: int, role: int) -> object:  # noqa: PLR0911 - one per role
        """``data()`` by row and column: ~300 cells x 7 roles per paint, so unserved roles return first."""
        if role not in _SERVED_ROLES:
            return None
        if not (0 <= position < len(self._rows) and 0 <= column < COLUMN_COUNT):
            return None
        row = self._rows[position]
        if role == _DISPLAY:
            if column == Column.LAST_SEEN:
                return format_age(self.age_s(row))
            if row.display is None:
                row.display = display_strings(row)
            return row.display[column]
        if role in _LOOK_ROLES:
            return self._look(row, column, role)
        if role == _ALIGNMENT:
            return self._alignment[column]
        if role == SORT_ROLE:
            return sort_key(row, column, self.age_s(row))
        if role == _TOOLTIP:
            return plain_tooltip(tooltip(row, Column(column), self._server_offset_s))
        return row.node_id  # NODE_ID_ROLE

    def _look(self, row: NodeRow, column: int, role: int) -> object:
        """Foreground, background and font: greyed when old or disconnected, tinted and bold at a threshold."""
        levels = row.levels
        if levels is None:
            row.display = display_strings(row)  # builds row.levels too
            levels = row.levels
            assert levels is not None
        level = levels[column]
        if role == _FONT:
            return self._bold if level else None
        if role == _FOREGROUND:
            if not self._connected or is_dimmed(row, column):
                return self._greyed_text
            return self._state_text if level or column == Column.STATE else None
        if column == Column.STATE:  # _BACKGROUND
            return self._state_brushes[row.status.state] if self._connected else self._disconnected_brush
        return self._level_brushes[level] if level and self._connected else None

    # -- what the window uses -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """False while the link is down: every cell is greyed out."""
        return self._connected

    def set_connected(self, connected: bool) -> None:
        """Grey out (or restore) every cell: data shown while disconnected may be stale."""
        if connected == self._connected:
            return
        self._connected = connected
        if self._rows:
            roles = [Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.BackgroundRole]
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, COLUMN_COUNT - 1), roles)

    def apply_batch(self, batch: NodeBatch, now_at: float) -> list[str]:
        """Apply one batch in place and return the ids of rows that changed or appeared.

        Signals: beginRemoveRows per contiguous run of vanished rows, then ONE
        dataChanged over min..max of the changed rows, then one beginInsertRows
        for the new nodes, appended at the end.
        """
        self._now_at = now_at
        self._server_offset_s = batch.server_time_at - now_at
        if batch.is_snapshot:
            self.refused_nodes = 0
        self.refused_nodes += batch.refused
        gone = (
            [node_id for node_id in self._row_of if node_id not in batch.entries]
            if batch.is_snapshot
            else [node_id for node_id in batch.removed if node_id in self._row_of]
        )
        self._remove(gone)
        changed_rows: list[int] = []
        new_rows: list[NodeRow] = []
        for node_id, entry in batch.entries.items():
            position = self._row_of.get(node_id)
            if position is None:
                if len(self._rows) + len(new_rows) >= self._max_rows:
                    self.refused_nodes += 1
                    continue
                history = bounded_history(entry.history)
                new_rows.append(NodeRow(node_id, entry.status, entry.facts, entry.last_sample, history))
            else:
                row = self._rows[position]
                self._state_counts[row.status.state] -= 1
                row.absorb(entry, replace=batch.is_snapshot)
                self._state_counts[row.status.state] += 1
                changed_rows.append(position)
        if changed_rows:
            self._emit_rows_changed(changed_rows)
        if new_rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new_rows) - 1)
            for offset, new_row in enumerate(new_rows):
                self._rows.append(new_row)
                self._row_of[new_row.node_id] = first + offset
                self._state_counts[new_row.status.state] += 1
            self.endInsertRows()
        return list(batch.entries)

    def refresh_ages(self, now_at: float) -> None:
        """Move the local clock on and repaint only the "last seen" column."""
        self._now_at = now_at
        if self._rows:
            last = len(self._rows) - 1
            self.dataChanged.emit(
                self.index(0, Column.LAST_SEEN),
                self.index(last, Column.LAST_SEEN),
                [Qt.ItemDataRole.DisplayRole, SORT_ROLE],
            )

    def sort_key(self, position: int, column: int) -> float | str | None:
        """The value row ``position`` sorts by in ``column`` (None: not measured)."""
        row = self._rows[position]
        # IntEnum members equal their ints: no Column(...) call per row of a 2,000-row sort.
        return sort_key(row, column, self.age_s(row) if column == Column.LAST_SEEN else None)

    @property
    def max_rows(self) -> int:
        """The row cap."""
        return self._max_rows

    @property
    def server_offset_s(self) -> float:
        """The collector's wall clock minus ours, as of the last batch."""
        return self._server_offset_s

    def row_at(self, position: int) -> NodeRow:
        """The row data of source row ``position``."""
        return self._rows[position]

    def node_id_at(self, position: int) -> str:
        """The node id of source row ``position``."""
        return self._rows[position].node_id

    def row_of(self, node_id: str) -> int | None:
        """The source row of ``node_id``, or None."""
        return self._row_of.get(node_id)

    def node(self, node_id: str) -> NodeRow | None:
        """The row data of ``node_id``, or None."""
        position = self._row_of.get(node_id)
        return None if position is None else self._rows[position]

    def node_ids(self) -> list[str]:
        """Every node id, in source row order."""
        return [row.node_id for row in self._rows]

    def state_counts(self) -> dict[NodeState, int]:
        """How many nodes are online, stale and offline (every state present, zero included)."""
        counts = self._state_counts
        return {"online": counts["online"], "stale": counts["stale"], "offline": counts["offline"]}

    def age_s(self, row: NodeRow) -> float | None:
        """Seconds since the collector last heard from the node, by the collector's clock."""
        if row.status.last_seen_at is None:
            return None
        return max(0.0, self._now_at + self._server_offset_s - row.status.last_seen_at)

    # -- internals ---------------------------------------------------------------------------

    def _emit_rows_changed(self, rows: list[int]) -> None:
        # Columns 1.. only: a node id never changes in place, so a sort by node needs no re-sort.
        # ``changed_rows`` lets NodeSortFilterModel repaint just those rows, not all of min..max.
        self.changed_rows = frozenset(rows)
        try:
            self.dataChanged.emit(self.index(min(rows), Column.STATE), self.index(max(rows), COLUMN_COUNT - 1))
        finally:
            self.changed_rows = None

    def _remove(self, node_ids: Iterable[str]) -> None:
        positions = sorted((self._row_of[node_id] for node_id in node_ids), reverse=True)
        if not positions:
            return
        for position in positions:
            self._state_counts[self._rows[position].status.state] -= 1
        for first, last in runs_descending(positions):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        self._row_of = {row.node_id: position for position, row in enumerate(self._rows)}


def runs_descending(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Group descending row numbers into (first, last) runs, highest first, so removals don't shift later runs."""
    runs: list[tuple[int, int]] = []
    for position in positions:
        if runs and runs[-1][0] == position + 1:
            runs[-1] = (position, runs[-1][1])
        else:
            runs.append((position, position))
    return runs
