"""Tests of the live re-sort's own event-loop turn: applying a batch never moves rows; the next turn does."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QPersistentModelIndex, Qt
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry
from tests.support.messages import WALL_T0, entry, facts, update
from tests.viewer.helpers import batch_of
from viewer.cells import Column
from viewer.grouping import GroupedSortFilterModel
from viewer.model import NodeTableModel
from viewer.sorting import NodeSortFilterModel


def labelled(node_id: str, role: str, cpu: float) -> NodeEntry:
    """A full entry of ``node_id`` with the label ``role=<role>``."""
    plain = entry(node_id, cpu=cpu)
    return plain.model_copy(update={"facts": facts(node_id).model_copy(update={"labels": {"role": role}})})


@pytest.fixture
def nodes() -> NodeTableModel:
    """Four nodes, two web and two db, of distinct CPU."""
    model = NodeTableModel()
    fleet = [labelled("w1", "web", 10.0), labelled("w2", "web", 20.0), labelled("d1", "db", 30.0)]
    model.apply_batch(batch_of(update(*fleet, labelled("d2", "db", 40.0))), WALL_T0)
    return model


class TestResortTurn:
    def test_a_batch_apply_does_not_move_rows_the_next_turn_does(self, qtbot: QtBot, nodes: NodeTableModel) -> None:
        """New figures repaint their rows at once, and the rows move only after the apply has returned."""
        view = NodeSortFilterModel(nodes)
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        layouts: list[bool] = []
        view.layoutChanged.connect(lambda *_args: layouts.append(True))
        nodes.apply_batch(batch_of(update(entry("w1", seq=2, cpu=99.0, full=False))), WALL_T0)
        assert layouts == []
        assert view.node_ids() == ["d2", "d1", "w2", "w1"]
        assert "99.0 %" in str(view.index(3, Column.CPU).data())  # the figure is there before the row moves
        qtbot.waitUntil(lambda: view.node_ids() == ["w1", "d2", "d1", "w2"], timeout=5000)
        assert layouts == [True]

    def test_a_held_order_stays_after_the_turn(self, qtbot: QtBot, nodes: NodeTableModel) -> None:
        """While held, the deferred re-sort leaves the rows alone; releasing moves them at once."""
        view = NodeSortFilterModel(nodes, resort_interval_s=0.0)
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        view.set_held(True)
        fired: list[bool] = []
        view._resort_timer.timeout.connect(lambda: fired.append(True))  # observe only: the turn has passed
        nodes.apply_batch(batch_of(update(entry("w1", seq=2, cpu=99.0, full=False))), WALL_T0)
        qtbot.waitUntil(lambda: fired == [True], timeout=5000)
        assert view.node_ids() == ["d2", "d1", "w2", "w1"]
        view.set_held(False)
        assert view.node_ids() == ["w1", "d2", "d1", "w2"]

    def test_grouped_rows_move_inside_their_group_and_the_selection_follows(
        self, qtbot: QtBot, nodes: NodeTableModel
    ) -> None:
        """Grouped by role, a CPU change moves its node within its group next turn, and the selection stays on it."""
        view = GroupedSortFilterModel(nodes)
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        view.set_group_key("role")
        assert view.group_names() == ["role=db", "role=web"]
        assert view.node_ids() == ["d2", "d1", "w2", "w1"]
        selected = QPersistentModelIndex(view.index(view.node_ids().index("w1") + 2, Column.NODE))
        assert selected.data() == "w1"
        nodes.apply_batch(batch_of(update(entry("w1", seq=2, cpu=99.0, full=False))), WALL_T0)
        qtbot.waitUntil(lambda: view.node_ids() == ["d2", "d1", "w1", "w2"], timeout=5000)
        assert selected.data() == "w1"
        assert view.header_rows() == [0, 3]
