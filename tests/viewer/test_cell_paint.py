"""A cell is painted with its own roles only: no colour, weight or alignment carried over from the cell before it.

Regression: ``multiData`` left a role without a value unset, on the belief that a delegate always
asks with fresh role data; Qt reuses it between cells, so every plain cell after a tinted one came
out tinted (a fleet of yellow rows in ``docs/screenshots/fleet.png``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtGui import QColor
from pytestqt.qtbot import QtBot

from shared.messages import Snapshot
from tests.support.messages import WALL_T0, entry
from tests.viewer.helpers import make_link, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.window import MainWindow


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    """A window on a fleet of one very busy node (its CPU cell tinted) and one calm node."""
    fleet = [entry("hot", cpu=97.0), entry("calm", cpu=10.0)]
    server = SubscribeServer(lambda: Snapshot(server_time_at=WALL_T0, nodes=fleet))
    server.start()
    win = MainWindow(make_link(server.url), collector_url=server.url)
    qtbot.addWidget(win)
    win.resize(1600, 600)
    win.show()
    win.link.start()
    qtbot.waitUntil(lambda: win.model.rowCount() == 2 and win.model.connected, timeout=5000)
    yield win
    win.close()
    server.close()


def background_at(win: MainWindow, node_id: str, column: Column) -> QColor:
    """The colour painted near the top-left corner of ``node_id``'s cell in ``column`` (past the grid line)."""
    table = win.table
    index = win.proxy.index(visible_nodes(win).index(node_id), column)
    rect = table.visualRect(index)
    viewport = table.viewport()
    assert viewport is not None
    image = viewport.grab().toImage()
    return image.pixelColor(rect.left() + 3, rect.top() + 3)


def test_cells_after_a_tinted_one_keep_the_plain_background(window: MainWindow) -> None:
    """The busy node's CPU cell is tinted; its Memory, Uptime and Last-seen cells, and the calm node's CPU, are not."""
    palette = window.table.palette()
    plain = {palette.base().color().name(), palette.alternateBase().color().name()}
    hot_cpu = background_at(window, "hot", Column.CPU).name()
    assert hot_cpu not in plain  # the tint shows at all
    painted = {
        (node_id, column.name): background_at(window, node_id, column).name()
        for node_id in ("hot", "calm")
        for column in (Column.MEMORY, Column.UPTIME, Column.LAST_SEEN)
    }
    painted["calm", "CPU"] = background_at(window, "calm", Column.CPU).name()
    assert {cell: colour for cell, colour in painted.items() if colour not in plain} == {}
