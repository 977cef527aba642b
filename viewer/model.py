"""``NodeTableModel``: the fleet as a Qt table model, changed in place one batch at a time.

A batch from ``CollectorLink`` becomes at most: row removals, ONE ``dataChanged`` over the
rows that changed (min..max), and one row insertion at the end. There is never a model
reset, so a snapshot after a reconnect keeps the view's selection and scroll position.
The "last seen" column ticks with ``refresh_ages()``, which signals that column only.

Not here: timers, sockets or widgets; time comes in as an argument (``now_at``).
UI thread only, like every Qt model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PyQt6.QtGui import QColor

from shared.messages import Heartbeat, History, NodeEntry, NodeFacts, NodeState, NodeStatus
from viewer.batching import NodeBatch
from viewer.format import (
    format_age,
    format_duration,
    format_load,
    format_percent,
    format_rx_tx,
    fullest_disk_name,
    fullest_disk_percent,
)

AnyIndex = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    """The table's columns, in display order."""

    NODE = 0  # first, so a dataChanged over columns 1.. never touches it (see _emit_rows_changed)
    STATE = 1  # shown first: the window moves this section visually
    CPU = 2
    LOAD = 3
    MEMORY = 4
    DISK = 5
    NET = 6
    UPTIME = 7
    LAST_SEEN = 8


HEADERS: Final[dict[Column, str]] = {
    Column.NODE: "Node",
    Column.STATE: "State",
    Column.CPU: "CPU",
    Column.LOAD: "Load 1/5/15",
    Column.MEMORY: "Memory",
    Column.DISK: "Fullest disk",
    Column.NET: "Net rx/tx",
    Column.UPTIME: "Uptime",
    Column.LAST_SEEN: "Last seen",
}

# Numeric sort keys (the proxy sorts by this role, so "9.0 %" < "10.0 %").
SORT_ROLE: Final = Qt.ItemDataRole.UserRole + 1
# The node id of any cell's row, so views and proxies never parse display text.
NODE_ID_ROLE: Final = Qt.ItemDataRole.UserRole + 2

STATE_ORDER: Final[dict[str, int]] = {"online": 0, "stale": 1, "offline": 2}
# Light backgrounds with dark text stay readable in both light and dark desktop themes.
_STATE_BACKGROUND: Final[dict[str, str]] = {"online": "#bfe8bf", "stale": "#ffe08a", "offline": "#f2b0b0"}
_DISCONNECTED_BACKGROUND: Final = "#d9d9d9"
_STATE_TEXT: Final = "#1a1a1a"
_GREYED_TEXT: Final = "#8c8c8c"
_RIGHT_ALIGNED: Final = frozenset({Column.CPU, Column.LOAD, Column.MEMORY, Column.DISK, Column.NET, Column.UPTIME})
COLUMN_COUNT: Final = len(Column)
# Roles a QTableView asks for on every paint that this model never serves: answered first, cheaply.
_DISPLAY: Final = int(Qt.ItemDataRole.DisplayRole)
_FOREGROUND: Final = int(Qt.ItemDataRole.ForegroundRole)
_BACKGROUND: Final = int(Qt.ItemDataRole.BackgroundRole)
_ALIGNMENT: Final = int(Qt.ItemDataRole.TextAlignmentRole)
_TOOLTIP: Final = int(Qt.ItemDataRole.ToolTipRole)
_SERVED_ROLES: Final = frozenset({_DISPLAY, _FOREGROUND, _BACKGROUND, _ALIGNMENT, _TOOLTIP, SORT_ROLE, NODE_ID_ROLE})


@dataclass(slots=True)
class NodeRow:
    """What the table knows about one node; mutated in place as batches arrive."""

    node_id: str
    status: NodeStatus
    facts: NodeFacts | None = None
    sample: Heartbeat | None = None
    history: History | None = None
    # Display strings of every column but "last seen", built on the first paint after a change:
    # a paint asks for each visible cell several times, and most rows are never visible.
    display: list[str] | None = None

    def absorb(self, entry: NodeEntry, *, replace: bool) -> None:
        """Take ``entry``'s fields; ``replace`` (a snapshot) also clears what the entry lacks."""
        self.display = None
        self.status = entry.status
        if replace or entry.facts is not None:
            self.facts = entry.facts
        if replace or entry.last_sample is not None:
            self.sample = entry.last_sample
        if replace or entry.history is not None:
            self.history = entry.history


class NodeTableModel(QAbstractTableModel):
    """The node table; ``apply_batch`` is the only way rows change."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
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
        self._state_text = QColor(_STATE_TEXT)
        self._greyed_text = QColor(_GREYED_TEXT)
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
                row.display = self._display_strings(row)
            return row.display[column]
        if role == _FOREGROUND:
            if not self._connected:
                return self._greyed_text
            return self._state_text if column == Column.STATE else None
        if role == _BACKGROUND:
            if column != Column.STATE:
                return None
            return self._state_brushes[row.status.state] if self._connected else self._disconnected_brush
        if role == _ALIGNMENT:
            return self._alignment[column]
        if role == SORT_ROLE:
            return self._sort_key(row, Column(column))
        if role == _TOOLTIP:
            return self._tooltip(row, Column(column))
        return row.node_id  # NODE_ID_ROLE

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
                new_rows.append(NodeRow(node_id, entry.status, entry.facts, entry.last_sample, entry.history))
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
        return self._sort_key(self._rows[position], Column(column))

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

    @staticmethod
    def _display_strings(row: NodeRow) -> list[str]:
        """Every column's text (the "last seen" slot is filled live by ``data``)."""
        texts = [""] * COLUMN_COUNT
        texts[Column.NODE] = row.node_id
        texts[Column.STATE] = row.status.state
        sample = row.sample
        if sample is not None:
            texts[Column.CPU] = format_percent(sample.cpu_percent)
            texts[Column.LOAD] = format_load(sample.load_avg)
            texts[Column.MEMORY] = format_percent(sample.mem_percent)
            texts[Column.DISK] = format_percent(fullest_disk_percent(sample.disks))
            texts[Column.NET] = format_rx_tx(sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s)
            texts[Column.UPTIME] = format_duration(sample.uptime_s)
        return texts

    def _sort_key(self, row: NodeRow, column: Column) -> float | str | None:  # noqa: PLR0911 - one branch per column
        sample = row.sample
        if column is Column.STATE:
            return STATE_ORDER[row.status.state]
        if column is Column.NODE:
            return row.node_id
        if column is Column.LAST_SEEN:
            return self.age_s(row)
        if sample is None:
            return None
        if column is Column.CPU:
            return sample.cpu_percent
        if column is Column.LOAD:
            return None if sample.load_avg is None else sample.load_avg[0]
        if column is Column.MEMORY:
            return sample.mem_percent
        if column is Column.DISK:
            return fullest_disk_percent(sample.disks)
        if column is Column.NET:
            rx, tx = sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s
            return None if rx is None and tx is None else (rx or 0.0) + (tx or 0.0)
        return sample.uptime_s

    def _tooltip(self, row: NodeRow, column: Column) -> str | None:
        if column is Column.STATE:
            reason = f" ({row.status.reason})" if row.status.reason else ""
            return f"{row.status.state}{reason}"
        if column is Column.NODE and row.facts is not None:
            return f"{row.facts.hostname} · {row.facts.os} {row.facts.os_release}"
        if column is Column.DISK and row.sample is not None:
            return fullest_disk_name(row.sample.disks)
        return None


def runs_descending(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Group descending row numbers into (first, last) runs, highest first, so removals don't shift later runs."""
    runs: list[tuple[int, int]] = []
    for position in positions:
        if runs and runs[-1][0] == position + 1:
            runs[-1] = (position, runs[-1][1])
        else:
            runs.append((position, position))
    return runs
