"""Tests of viewer.sorting: display order and filter over the node model, without resets."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PyQt6.QtWidgets import QApplication
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry
from tests.support.messages import WALL_T0, entry, status, update
from tests.viewer.helpers import Signals, batch_of, check_model
from viewer.cells import Column
from viewer.filtering import parse
from viewer.model import NodeTableModel
from viewer.sorting import NodeSortFilterModel


@pytest.fixture
def nodes() -> NodeTableModel:
    """A node model with four nodes of distinct CPU, one unmeasured."""
    model = NodeTableModel()
    model.apply_batch(
        batch_of(
            update(
                entry("d", cpu=40.0),
                entry("a", cpu=9.0),
                NodeEntry(status=status("c")),  # no sample yet: CPU not measured
                entry("b", cpu=10.0),
            )
        ),
        WALL_T0,
    )
    return model


@pytest.fixture
def view(nodes: NodeTableModel, qtmodeltester: ModelTester) -> NodeSortFilterModel:
    """The sort/filter model over ``nodes``, checked by qtmodeltester from the start."""
    ordered = NodeSortFilterModel(nodes)
    check_model(qtmodeltester, ordered)
    ordered.sort(Column.NODE, Qt.SortOrder.AscendingOrder)
    return ordered


class TestNodeSortFilterModel:
    def test_sorted_by_node(self, view: NodeSortFilterModel) -> None:
        """Sorted by node, rows show in node-id order whatever order they arrived in."""
        assert view.node_ids() == ["a", "b", "c", "d"]
        assert view.index(0, Column.CPU).data() == "9.0 %"

    def test_sorts_numerically_with_unmeasured_last(self, view: NodeSortFilterModel) -> None:
        """CPU sorts 9 < 10 < 40 ascending and 40 > 10 > 9 descending; the unmeasured node is last both ways."""
        view.sort(Column.CPU, Qt.SortOrder.AscendingOrder)
        assert view.node_ids() == ["a", "b", "d", "c"]
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        assert view.node_ids() == ["d", "b", "a", "c"]

    @pytest.mark.parametrize(
        ("order", "expected"),
        [
            (Qt.SortOrder.AscendingOrder, ["e", "z", "a", "b", "y", "d", "c"]),
            (Qt.SortOrder.DescendingOrder, ["d", "a", "b", "y", "e", "z", "c"]),
        ],
    )
    def test_equal_figures_keep_node_order_either_way(
        self, nodes: NodeTableModel, view: NodeSortFilterModel, order: Qt.SortOrder, expected: list[str]
    ) -> None:
        """Nodes with the same CPU stay in node-id order, ascending or descending; unmeasured last."""
        extra = [entry("z", cpu=5.0), entry("y", cpu=10.0), entry("e", cpu=5.0)]
        nodes.apply_batch(batch_of(update(*extra, entry("a", cpu=10.0))), WALL_T0)
        view.sort(Column.CPU, order)
        assert view.node_ids() == expected

    @pytest.mark.parametrize("order", [Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder])
    def test_filtered_order_is_value_then_node_id_with_unmeasured_last(
        self, nodes: NodeTableModel, view: NodeSortFilterModel, order: Qt.SortOrder
    ) -> None:
        """Filtered, rows still sort by figure, equal figures by node id, and unmeasured nodes go last."""
        extra = [entry("xb", cpu=5.0), entry("xa", cpu=5.0), entry("xz", cpu=7.0), NodeEntry(status=status("xc"))]
        nodes.apply_batch(batch_of(update(*extra, entry("b", cpu=5.0))), WALL_T0)
        view.set_filter(parse("x"))
        view.sort(Column.CPU, order)
        measured = ["xa", "xb", "xz"] if order is Qt.SortOrder.AscendingOrder else ["xz", "xa", "xb"]
        assert view.node_ids() == [*measured, "xc"]

    def test_live_resort_keeps_the_selection_on_its_node(
        self, qtbot: QtBot, nodes: NodeTableModel, view: NodeSortFilterModel
    ) -> None:
        """When a new sample moves a node in a CPU sort, a persistent index (the selection) follows it."""
        view.sort(Column.CPU, Qt.SortOrder.AscendingOrder)
        selected = QPersistentModelIndex(view.index(0, Column.NODE))
        assert selected.data() == "a"
        resets: list[bool] = []
        view.modelReset.connect(lambda: resets.append(True))
        nodes.apply_batch(batch_of(update(entry("a", seq=2, cpu=99.0, full=False))), WALL_T0)
        qtbot.waitUntil(lambda: view.node_ids() == ["b", "d", "a", "c"], timeout=5000)
        assert selected.data() == "a"
        assert selected.row() == 2
        assert resets == []

    def test_one_change_is_one_row_signal(self, nodes: NodeTableModel, view: NodeSortFilterModel) -> None:
        """A heartbeat of one node signals exactly that view row; two apart nodes signal two rows, not the span."""
        changes: list[tuple[int, int]] = []
        view.dataChanged.connect(lambda tl, br, _roles=(): changes.append((tl.row(), br.row())))
        nodes.apply_batch(batch_of(update(entry("b", seq=2, cpu=11.0, full=False))), WALL_T0)
        assert changes == [(1, 1)]
        changes.clear()
        nodes.apply_batch(batch_of(update(entry("a", seq=3, full=False), entry("d", seq=3, full=False))), WALL_T0)
        assert sorted(changes) == [(0, 0), (3, 3)]

    def test_filter_hides_and_shows_rows(self, nodes: NodeTableModel, view: NodeSortFilterModel) -> None:
        """The filter keeps matching node ids (case-insensitive); new matching nodes appear in place."""
        signals = Signals()
        signals.attach(view)
        view.set_filter(parse("B"))
        assert view.node_ids() == ["b"]
        nodes.apply_batch(batch_of(update(entry("ab"), entry("zz"))), WALL_T0)
        assert view.node_ids() == ["ab", "b"]
        view.set_filter(parse(""))
        assert view.node_ids() == ["a", "ab", "b", "c", "d", "zz"]
        assert ("reset", -1, -1) not in signals.events

    def test_source_removals_follow(self, nodes: NodeTableModel, view: NodeSortFilterModel) -> None:
        """Nodes the collector forgets leave the view, and the remaining rows still map to the right nodes."""
        nodes.apply_batch(batch_of(update(removed=("a", "c"))), WALL_T0)
        assert view.node_ids() == ["b", "d"]
        assert view.index(1, Column.CPU).data() == "40.0 %"
        source = view.mapToSource(view.index(1, Column.NODE))
        assert source.data() == "d"
        assert view.mapFromSource(source).row() == 1

    def test_qtmodeltester_through_changes(
        self, nodes: NodeTableModel, view: NodeSortFilterModel, qtmodeltester: ModelTester
    ) -> None:
        """The model keeps Qt's contract through sorting, filtering, inserts, removals and updates."""
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        view.set_filter(parse("a"))
        nodes.apply_batch(batch_of(update(entry("aa", cpu=50.0), entry("a", seq=2, cpu=1.0, full=False))), WALL_T0)
        view.set_filter(parse(""))
        nodes.apply_batch(batch_of(update(removed=("b",))), WALL_T0)
        check_model(qtmodeltester, view)
        assert view.node_ids() == ["aa", "d", "a", "c"]
        assert view.data(QModelIndex()) is None


class TestCalmResort:
    def test_live_figures_move_rows_at_most_once_a_second(self, qtbot: QtBot, nodes: NodeTableModel) -> None:
        """A CPU sort follows new figures on the next event-loop turn, then waits a second before moving rows again."""
        now = [100.0]
        view = NodeSortFilterModel(nodes, clock=lambda: now[0])
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        assert view.node_ids() == ["d", "b", "a", "c"]
        nodes.apply_batch(batch_of(update(entry("a", seq=2, cpu=99.0, full=False))), WALL_T0)
        qtbot.waitUntil(lambda: view.node_ids() == ["a", "d", "b", "c"], timeout=5000)
        now[0] += 0.1
        nodes.apply_batch(batch_of(update(entry("b", seq=3, cpu=98.0, full=False))), WALL_T0)
        QApplication.processEvents()  # a timer that fires early still asks the (fake) clock first
        assert view.node_ids() == ["a", "d", "b", "c"]  # held for the rest of the second
        now[0] += 1.0
        nodes.apply_batch(batch_of(update(entry("c", seq=3, cpu=1.0, full=False))), WALL_T0)
        qtbot.waitUntil(lambda: view.node_ids() == ["a", "b", "d", "c"], timeout=5000)

    def test_held_order_moves_when_released(self, nodes: NodeTableModel) -> None:
        """While held, changes and new nodes wait (new ones at the bottom); on release the order is right."""
        view = NodeSortFilterModel(nodes)
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        view.set_held(True)
        nodes.apply_batch(batch_of(update(entry("a", seq=2, cpu=99.0, full=False), entry("e", cpu=50.0))), WALL_T0)
        assert view.node_ids() == ["d", "b", "a", "c", "e"]
        view.set_held(False)
        assert view.node_ids() == ["a", "e", "d", "b", "c"]

    def test_default_order_is_problems_first(self) -> None:
        """Unsorted by the user: offline, then stale, then live nodes by CPU (busiest first), ties by node id."""
        model = NodeTableModel()
        model.apply_batch(
            batch_of(
                update(
                    entry("b", cpu=5.0),
                    entry("a", cpu=5.0),
                    entry("z", state="stale"),
                    entry("y", state="offline"),
                    entry("hot", cpu=90.0),
                )
            ),
            WALL_T0,
        )
        assert NodeSortFilterModel(model).node_ids() == ["y", "z", "hot", "a", "b"]
