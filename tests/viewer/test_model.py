"""Tests of viewer.model: batches change the table in place, with the fewest signals."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QModelIndex, QSortFilterProxyModel, Qt
from pytestqt.modeltest import ModelTester

from tests.support.messages import WALL_T0, entry, snapshot, update
from tests.viewer.helpers import Signals, batch_of, check_model
from viewer.cells import Column
from viewer.model import NODE_ID_ROLE, SORT_ROLE, NodeTableModel


@pytest.fixture
def model(qtmodeltester: ModelTester) -> NodeTableModel:
    """A model already checked by qtmodeltester while empty."""
    table = NodeTableModel()
    check_model(qtmodeltester, table)
    return table


def cell(model: NodeTableModel, node_id: str, column: Column, role: int = Qt.ItemDataRole.DisplayRole) -> object:
    row = model.row_of(node_id)
    assert row is not None
    return model.data(model.index(row, column), role)


class TestNodeTableModel:
    def test_qtmodeltester_through_batches(self, qtmodeltester: ModelTester) -> None:
        """The model obeys Qt's model contract while rows appear, change and vanish."""
        model = NodeTableModel()
        check_model(qtmodeltester, model)
        model.apply_batch(batch_of(snapshot("a", "b", "c")), WALL_T0)
        model.apply_batch(batch_of(update(entry("b", seq=2, full=False), entry("d"))), WALL_T0 + 1)
        model.apply_batch(batch_of(update(removed=("a", "c"))), WALL_T0 + 2)
        model.apply_batch(batch_of(snapshot("d", "e")), WALL_T0 + 3)
        model.set_connected(False)
        model.refresh_ages(WALL_T0 + 5)
        check_model(qtmodeltester, model)
        assert model.node_ids() == ["d", "e"]

    def test_snapshot_fills_the_table(self, model: NodeTableModel) -> None:
        """A snapshot's nodes appear with readable cells."""
        model.apply_batch(batch_of(snapshot("web-1", "db-1")), WALL_T0 + 3)
        assert model.rowCount() == 2
        assert cell(model, "web-1", Column.STATE) == "online"
        assert cell(model, "web-1", Column.CPU) == "12.5 %"
        assert cell(model, "web-1", Column.LOAD) == "0.50 0.40 0.30"
        assert cell(model, "web-1", Column.MEMORY) == "40.0 %"
        assert cell(model, "web-1", Column.DISK) == "▲ 90.0 %"  # the default /data is at the warning threshold
        assert cell(model, "web-1", Column.NET) == "↓ 1.5 KiB/s  ↑ 2.5 MiB/s"
        assert cell(model, "web-1", Column.UPTIME) == "3 h 05 m"
        assert cell(model, "web-1", Column.LAST_SEEN) == "just now"
        assert cell(model, "db-1", Column.STATE, NODE_ID_ROLE) == "db-1"

    def test_one_heartbeat_changes_exactly_one_row(self, model: NodeTableModel) -> None:
        """An update of one node emits exactly one dataChanged, for that row only."""
        model.apply_batch(batch_of(snapshot("a", "b", "c")), WALL_T0)
        signals = Signals()
        signals.attach(model)
        changed = model.apply_batch(batch_of(update(entry("b", seq=2, cpu=77.0, full=False))), WALL_T0 + 1)
        assert changed == ["b"]
        row_b = model.row_of("b")
        assert signals.events == [("changed", row_b, row_b)]
        assert cell(model, "b", Column.CPU) == "77.0 %"
        assert cell(model, "a", Column.CPU) == "12.5 %"

    def test_many_changes_are_one_signal(self, model: NodeTableModel) -> None:
        """A batch touching several rows emits one dataChanged over min..max."""
        model.apply_batch(batch_of(snapshot(*(f"n{i}" for i in range(10)))), WALL_T0)
        signals = Signals()
        signals.attach(model)
        model.apply_batch(batch_of(update(entry("n2", seq=2, full=False), entry("n7", seq=2, full=False))), WALL_T0)
        assert signals.events == [("changed", 2, 7)]

    def test_new_and_removed_nodes_are_row_inserts_and_removes(self, model: NodeTableModel) -> None:
        """Nodes that appear are appended with one insert; vanished nodes are removed; never a reset."""
        model.apply_batch(batch_of(snapshot("a", "b", "c", "d")), WALL_T0)
        signals = Signals()
        signals.attach(model)
        model.apply_batch(batch_of(update(entry("x"), entry("y"))), WALL_T0)
        model.apply_batch(batch_of(update(removed=("b", "c"))), WALL_T0)
        assert signals.events == [("inserted", 4, 5), ("removed", 1, 2)]
        assert model.node_ids() == ["a", "d", "x", "y"]
        assert model.row_of("x") == 2

    def test_snapshot_rebuild_keeps_rows_in_place(self, model: NodeTableModel) -> None:
        """A fresh snapshot updates survivors in place, removes the gone and appends the new: no reset."""
        model.apply_batch(batch_of(snapshot("a", "b", "c")), WALL_T0)
        signals = Signals()
        signals.attach(model)
        model.apply_batch(batch_of(snapshot("c", "a", "z")), WALL_T0 + 1)
        assert ("reset", -1, -1) not in signals.events
        assert signals.events == [("removed", 1, 1), ("changed", 0, 1), ("inserted", 2, 2)]
        assert model.node_ids() == ["a", "c", "z"]

    def test_state_is_colour_and_text(self, model: NodeTableModel) -> None:
        """Each state has its own background colour, and the text says the state."""
        model.apply_batch(
            batch_of(update(entry("up"), entry("late", state="stale"), entry("down", state="offline"))), WALL_T0
        )
        colours = {cell(model, n, Column.STATE, Qt.ItemDataRole.BackgroundRole).name() for n in ("up", "late", "down")}  # type: ignore[attr-defined]
        assert len(colours) == 3
        assert cell(model, "late", Column.STATE) == "stale"
        assert cell(model, "down", Column.STATE) == "offline"

    def test_disconnected_greys_out_every_cell(self, model: NodeTableModel) -> None:
        """While disconnected every cell gets the grey foreground, in one signal; reconnecting restores it."""
        model.apply_batch(batch_of(snapshot("a", "b")), WALL_T0)
        signals = Signals()
        signals.attach(model)
        model.set_connected(False)
        assert signals.events == [("changed", 0, 1)]
        grey = cell(model, "a", Column.CPU, Qt.ItemDataRole.ForegroundRole)
        assert grey is not None
        model.set_connected(True)
        assert cell(model, "a", Column.CPU, Qt.ItemDataRole.ForegroundRole) is None

    def test_ages_tick_with_the_collector_clock(self, model: NodeTableModel) -> None:
        """'Last seen' counts from the collector's clock, whatever the local clock's offset."""
        local_skew_s = -1000.0  # this machine's clock is 1000 s behind the collector's
        model.apply_batch(batch_of(snapshot("a", server_time_at=WALL_T0 + 2)), WALL_T0 + 2 + local_skew_s)
        assert cell(model, "a", Column.LAST_SEEN) == "2 s ago"
        signals = Signals()
        signals.attach(model)
        model.refresh_ages(WALL_T0 + 65 + local_skew_s)
        assert signals.events == [("changed", 0, 0)]
        assert cell(model, "a", Column.LAST_SEEN) == "1 m ago"

    def test_sorts_numerically_through_a_proxy(self, model: NodeTableModel) -> None:
        """Sorting by CPU orders 9 % before 10 % and puts unmeasured values last."""
        model.apply_batch(
            batch_of(update(entry("ten", cpu=10.0), entry("nine", cpu=9.0), entry("ninety", cpu=90.0))), WALL_T0
        )
        proxy = QSortFilterProxyModel()
        proxy.setSourceModel(model)
        proxy.setSortRole(SORT_ROLE)
        proxy.sort(Column.CPU, Qt.SortOrder.AscendingOrder)
        order = [proxy.index(r, Column.NODE).data() for r in range(proxy.rowCount())]
        assert order == ["nine", "ten", "ninety"]

    def test_state_counts(self, model: NodeTableModel) -> None:
        """Counts per state include zeros."""
        model.apply_batch(batch_of(update(entry("a"), entry("b", state="offline"))), WALL_T0)
        assert model.state_counts() == {"online": 1, "stale": 0, "offline": 1}

    def test_invalid_index_has_no_data(self, model: NodeTableModel) -> None:
        """An invalid or out-of-range index yields nothing rather than raising."""
        assert model.data(QModelIndex()) is None
        assert model.data(model.index(5, 0)) is None
