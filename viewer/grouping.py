"""``GroupedSortFilterModel``: the sorted, filtered node table, optionally grouped by one label.

With a label key chosen (``set_group_key("role")``) every group gets a header row above its
nodes, "role=web" with its state counts ("12 online · 1 stale · 2 offline"), and nodes
without the label go to "(no role)". Groups are in name order ("(no ...)" last); sorting and
the filter work inside each group, and a collapsed group keeps only its header. Without a key
it is exactly ``NodeSortFilterModel``.

How it stays cheap at 10,000 rows: header rows live in the same order list as node rows, as
negative ids, and the group is the first part of every sort key, so one ``sorted()`` orders
both. Each node's (group, state) contribution to the counts is kept, and a batch updates only
the rows it changed. Rebuilding everything happens only on a user's action (a new key or
filter). Header rows have no node id (``NODE_ID_ROLE`` is None), so selecting one picks no node.

Not here: the choice widget (``viewer.filterbar``), spans and clicks (``viewer.groupview``). UI thread only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from PyQt6.QtCore import QModelIndex, QModelRoleDataSpan, Qt
from PyQt6.QtGui import QFont

from viewer.cells import COLUMN_COUNT, Column, NodeRow
from viewer.filtering import NodeFilter
from viewer.format import plain_tooltip
from viewer.model import AnyIndex
from viewer.sorting import NodeSortFilterModel

_DISPLAY: Final = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP: Final = int(Qt.ItemDataRole.ToolTipRole)
_FONT: Final = int(Qt.ItemDataRole.FontRole)
_STATES: Final = ("online", "stale", "offline")
_OPEN_MARK: Final = "▾"
_CLOSED_MARK: Final = "▸"

Contribution = tuple[int, str]  # (group id, state) of a node the filter keeps


def group_name(row: NodeRow, key: str) -> str:
    """``key=value`` of the row's label, or ``(no key)``."""
    labels = row.facts.labels if row.facts is not None else None
    value = labels.get(key) if labels else None
    return f"{key}={value}" if value is not None else f"(no {key})"


class GroupedSortFilterModel(NodeSortFilterModel):
    """``NodeSortFilterModel`` plus group header rows (negative ids in the order list)."""

    # A class default, because the base class sorts (calling ``_key``) before ``__init__`` here runs.
    _group_key: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bold = QFont()
        self._bold.setBold(True)
        self._setup_groups()
        self._bind_key()

    def _setup_groups(self) -> None:
        self._group_key = None
        self._group_ids: dict[str, int] = {}  # group name -> id (stable while the key holds)
        self._group_names: list[str] = []
        self._group_ranks: dict[int, int] = {}
        self._collapsed: set[str] = set()
        self._contrib: dict[str, Contribution | None] = {}  # node id -> its part of the counts
        self._counts: dict[int, Counter[str]] = {}

    # -- what the window uses -----------------------------------------------------------------

    @property
    def group_key(self) -> str | None:
        """The label key rows are grouped by, or None."""
        return self._group_key

    def set_group_key(self, key: str | None) -> None:
        """Group by label ``key`` (None: no groups); rebuilds the order once."""
        if key == self.group_key:
            return
        self._hide([row for row in self._order if row < 0])
        self._setup_groups()
        self._group_key = key or None
        self._bind_key()
        self._keys.clear()
        self._recount()
        self.set_filter(self._filter)

    def group_names(self) -> list[str]:
        """The groups with a header now, in display order."""
        return [self._group_names[-1 - row] for row in self._order if row < 0]

    def header_rows(self) -> list[int]:
        """View rows that are group headers."""
        return [view_row for view_row, row in enumerate(self._order) if row < 0]

    def is_header(self, view_row: int) -> bool:
        """True if ``view_row`` is a group header."""
        return 0 <= view_row < len(self._order) and self._order[view_row] < 0

    def group_of_view_row(self, view_row: int) -> str | None:
        """The group name of a header row, or None."""
        return self._group_names[-1 - self._order[view_row]] if self.is_header(view_row) else None

    def toggle_group(self, name: str) -> None:
        """Collapse the group ``name``, or expand it."""
        self.set_collapsed(name, name not in self._collapsed)

    def set_collapsed(self, name: str, collapsed: bool) -> None:
        """Collapse (only its header stays) or expand the group ``name``."""
        if self.group_key is None or collapsed == (name in self._collapsed):
            return
        (self._collapsed.add if collapsed else self._collapsed.discard)(name)
        self.set_filter(self._filter)  # re-sorts even while held: expanded nodes go under their header
        group = self._group_ids.get(name)
        header = None if group is None else self._view_row.get(-1 - group)
        if header is not None:
            self.dataChanged.emit(self.index(header, 0), self.index(header, COLUMN_COUNT - 1))

    def expand_group_of(self, node_id: str) -> None:
        """Expand the group holding ``node_id`` (an alert was clicked), if it is collapsed."""
        row = self._source.node(node_id)
        if row is not None and self.group_key is not None:
            self.set_collapsed(group_name(row, self.group_key), collapsed=False)

    def node_count(self) -> int:
        """Nodes the filter keeps, collapsed groups' nodes included (their header counts them)."""
        if self.group_key is None:
            return len(self._order)
        return sum(1 for contribution in self._contrib.values() if contribution is not None)

    def set_filter(self, node_filter: NodeFilter) -> None:
        """Show only the nodes ``node_filter`` accepts (and recount the groups)."""
        if self.group_key is not None and node_filter is not self._filter:
            self._filter = node_filter
            self._recount()
        super().set_filter(node_filter)
        self._sync_headers(set(self._counts))
        self._resort(force=True)  # the user's action: headers that came back go in place, even while held

    # -- Qt model interface ----------------------------------------------------------------------

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """A node's cell, or a group header's."""
        row = index.row()
        if 0 <= row < len(self._order) and self._order[row] < 0:
            return self._header_data(-1 - self._order[row], index.column(), role)
        return super().data(index, role)

    def multiData(self, index: QModelIndex, roleDataSpan: QModelRoleDataSpan | None) -> None:  # noqa: N802, N803 - Qt's names
        """Every role of a cell in one call; headers answer through ``data``."""
        row = index.row()
        if roleDataSpan is not None and 0 <= row < len(self._order) and self._order[row] < 0:
            for position in range(len(roleDataSpan)):
                role_data = roleDataSpan[position]
                role_data.setData(self._header_data(-1 - self._order[row], index.column(), role_data.role()))
            return
        super().multiData(index, roleDataSpan)

    def node_ids(self) -> list[str]:
        """The visible node ids in display order (headers left out)."""
        return [self._source.node_id_at(row) for row in self._order if row >= 0]

    # -- hooks into NodeSortFilterModel -------------------------------------------------------------

    def _accepts(self, source_row: int) -> bool:
        if not super()._accepts(source_row):
            return False
        key = self.group_key
        if key is None or not self._collapsed:
            return True
        return group_name(self._source.row_at(source_row), key) not in self._collapsed

    def _bind_key(self) -> None:
        """Without a group, sorts call the base key directly: no extra call per row and re-sort.

        At 10,000 rows that wrapper was 9 % of the UI thread's busy time with no group chosen
        (README "Viewer responsiveness"). The instance attribute shadows the method below.
        """
        self._key = super()._key if self._group_key is None else self._grouped_key  # type: ignore[method-assign]

    def _sorted(self, rows: list[int]) -> list[int]:
        """Grouped, one sort on the key tuples: a header's key is one int, so the base's three passes do not apply."""
        if self._group_key is None:
            return super()._sorted(rows)
        return sorted(rows, key=self._key, reverse=self._descending)

    def _key(self, source_row: int) -> tuple[bool, float | str, int]:
        """The grouped key; only called before ``__init__`` has bound ``_bind_key``'s choice."""
        return self._grouped_key(source_row)

    def _grouped_key(self, source_row: int) -> tuple[bool, float | str, int]:
        cached = self._keys.get(source_row)  # first: a sort asks for every row's key, most already known
        if cached is not None:
            return cached
        key = self._group_key
        if key is None:
            return super()._key(source_row)
        # One int leads the key: the group's rank, then header before nodes, then the base key's
        # "measured first" flag; so a key is as short as the base one (sorting 10,000 rows stays cheap).
        # Sorted in reverse when descending: the ranks are negated so groups still go in name order.
        if source_row < 0:
            rank = self._rank(-1 - source_row)
            grouped: tuple[int, ...] | tuple[int, float | str, int] = (
                (3 - 4 * rank,) if self._descending else (4 * rank,)
            )
        else:
            rank = self._rank(self._group_id(group_name(self._source.row_at(source_row), key)))
            measured_flag, value, node_rank = super()._key(source_row)
            lead = int(measured_flag) - 4 * rank if self._descending else 4 * rank + 2 + int(measured_flag)
            grouped = (lead, value, node_rank)
        self._keys[source_row] = grouped  # type: ignore[assignment]  # one key shape per order, never mixed
        return grouped  # type: ignore[return-value]

    def _on_source_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
        exact = self._source.changed_rows
        if self.group_key is None or exact is None:
            super()._on_source_data_changed(top_left, bottom_right, _roles)
            return
        dirty, moved_group = self._update_contributions(exact)
        if moved_group:
            for row in moved_group:
                self._keys.pop(row, None)
            self._hide([row for row in moved_group if row in self._view_row and not self._accepts(row)])
            self._show(sorted(row for row in moved_group if row not in self._view_row and self._accepts(row)))
        super()._on_source_data_changed(top_left, bottom_right, _roles)
        if moved_group:
            self._resort()
        self._sync_headers(dirty)

    def _on_source_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        dirty = self._update_contributions(range(first, last + 1))[0] if self.group_key is not None else set()
        super()._on_source_rows_inserted(parent, first, last)
        self._sync_headers(dirty)

    def _on_source_rows_about_to_be_removed(self, parent: QModelIndex, first: int, last: int) -> None:
        super()._on_source_rows_about_to_be_removed(parent, first, last)
        if self.group_key is not None:
            dirty = set()
            for row in range(first, last + 1):
                gone = self._contrib.pop(self._source.node_id_at(row), None)
                if gone is not None:
                    self._counts[gone[0]][gone[1]] -= 1
                    dirty.add(gone[0])
            self._sync_headers(dirty)

    # -- internals ------------------------------------------------------------------------------------

    def _group_id(self, name: str) -> int:
        group = self._group_ids.get(name)
        if group is None:
            group = self._group_ids[name] = len(self._group_names)
            self._group_names.append(name)
            self._group_ranks.clear()
            self._keys.clear()  # every rank may move
        return group

    def _rank(self, group: int) -> int:
        if not self._group_ranks:
            names = sorted(self._group_ids, key=lambda name: (name.startswith("(no "), name))
            self._group_ranks = {self._group_ids[name]: rank for rank, name in enumerate(names)}
        return self._group_ranks[group]

    def _contributes(self, source_row: int) -> Contribution | None:
        row = self._source.row_at(source_row)
        if not (self._filter.empty or self._filter(row)):
            return None
        assert self.group_key is not None
        return self._group_id(group_name(row, self.group_key)), row.status.state

    def _update_contributions(self, source_rows: Iterable[int]) -> tuple[set[int], list[int]]:
        """Recount ``source_rows``; the groups whose counts changed, and the rows that changed group."""
        dirty: set[int] = set()
        regrouped: list[int] = []
        for source_row in source_rows:
            node_id = self._source.node_id_at(source_row)
            new = self._contributes(source_row)
            old = self._contrib.get(node_id)
            if new == old:
                continue
            self._contrib[node_id] = new
            if new is not None and old is not None and new[0] != old[0]:
                regrouped.append(source_row)
            for part, step in ((old, -1), (new, 1)):
                if part is not None:
                    self._counts.setdefault(part[0], Counter())[part[1]] += step
                    dirty.add(part[0])
        return dirty, regrouped

    def _recount(self) -> None:
        self._contrib.clear()
        self._counts.clear()
        if self.group_key is not None:
            self._update_contributions(range(self._source.rowCount()))

    def _sync_headers(self, dirty: set[int]) -> None:
        """Show a header for every group with a node the filter keeps; repaint the ``dirty`` ones."""
        if self.group_key is None:
            return
        wanted = {group for group, counts in self._counts.items() if counts.total() > 0}
        shown = {-1 - row for row in self._view_row if row < 0}
        gone = [-1 - group for group in shown - wanted]
        new = [-1 - group for group in sorted(wanted - shown)]
        self._hide(gone)
        self._show(new)
        for group in dirty & wanted:
            view_row = self._view_row.get(-1 - group)
            if view_row is not None:
                self.dataChanged.emit(self.index(view_row, 0), self.index(view_row, COLUMN_COUNT - 1))

    def _header_data(self, group: int, column: int, role: int) -> object:
        """A header's cells: the mark (State), the name and size (Node), the state counts (from CPU on)."""
        if role == _FONT:
            return self._bold
        if role not in {_DISPLAY, _TOOLTIP}:  # NODE_ID_ROLE too: a header is no node
            return None
        name = self._group_names[group]
        counts = self._counts.get(group, Counter())
        texts = {
            Column.STATE: _CLOSED_MARK if name in self._collapsed else _OPEN_MARK,
            Column.NODE: f"{name} ({counts.total():,})",
            Column.CPU: " · ".join(f"{counts[state]:,} {state}" for state in _STATES),
        }
        if role == _TOOLTIP:  # the whole line, for when the counts are scrolled out of view
            return plain_tooltip(f"{texts[Column.NODE]} · {texts[Column.CPU]}")
        return texts.get(Column(column)) if 0 <= column < COLUMN_COUNT else None
