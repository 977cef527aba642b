"""Rows grouped by a label: headers with state counts, collapsible, sorted and filtered inside, remembered.

The labels come from the wire: real ``nodewatch agent`` processes started with ``--label``,
pushing to a real collector CLI on loopback; one of them is killed to move the counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import QRect, QSettings, Qt
from PyQt6.QtGui import QColor, QImage
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from tests.support.processes import CollectorProc, ProcessGroup, Spawned
from tests.viewer.helpers import check_model, start_window, visible_nodes
from viewer.cells import Column
from viewer.groupcounts import visible_part
from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 20_000
# (node id, labels): two web nodes, one db node, one without the label.
FLEET = (("web-1", ("role=web", "dc=fra")), ("web-2", ("role=web",)), ("db-1", ("role=db", "dc=fra")), ("bare", ()))


class Fleet:
    """A real collector and four labelled real agents."""

    def __init__(self, workdir: Path) -> None:
        self.group = ProcessGroup(workdir)
        self.workdir = workdir
        self.collector: CollectorProc = self.group.collector("--log-level", "WARNING")
        self.agents = {node_id: self.agent(node_id, *labels) for node_id, labels in FLEET}

    def agent(self, node_id: str, *labels: str) -> Spawned:
        """Start a real agent pushing every 0.2 s with ``labels``."""
        args = ["--interval", "0.2", "--state-dir", str(self.workdir / f"state-{node_id}")]
        for label in labels:
            args += ["--label", label]
        return self.group.agent(self.collector.url, node_id, *args)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One fleet for the tests that only look (the one that kills an agent has its own)."""
    running = Fleet(tmp_path_factory.mktemp("fleet"))
    yield running
    running.group.close()


def ink_pixels(image: QImage, area: QRect) -> int:
    """Pixels of ``area`` far from its commonest colour (its background): drawn text."""
    pixels = [
        image.pixelColor(x, y)
        for x in range(area.left(), area.right() + 1)
        for y in range(area.top(), area.bottom() + 1)
    ]
    background = Counter(colour.rgb() for colour in pixels).most_common(1)[0][0]
    lightness = QColor.fromRgb(background).lightness()
    return sum(abs(colour.lightness() - lightness) > 80 for colour in pixels)


def grouped_window(qtbot: QtBot, url: str, key: str = "role", **settings: QSettings) -> MainWindow:
    """A window on ``url`` with all four nodes, sorted by node, grouped by ``key`` through the Group by box."""
    win = start_window(qtbot, url, 4, **settings)
    box = win.filter_bar.group_box
    qtbot.waitUntil(lambda: box.findData(key) >= 0, timeout=WAIT_MS)  # offered once a node has the label
    win.table.sortByColumn(Column.NODE, Qt.SortOrder.AscendingOrder)
    box.setCurrentIndex(box.findData(key))
    return win


def header_counts(win: MainWindow, name: str) -> str:
    """The state counts of group ``name``'s header row."""
    proxy = win.proxy
    for row in proxy.header_rows():
        if proxy.group_of_view_row(row) == name:
            return str(proxy.index(row, Column.CPU).data())
    raise AssertionError(f"no header {name!r} in {visible_nodes(win)}")


class TestGrouping:
    def test_headers_with_counts_and_no_label_group(self, qtbot: QtBot, fleet: Fleet) -> None:
        """Grouped by role, each group has a header with its size and state counts; unlabelled nodes go last."""
        win = grouped_window(qtbot, fleet.collector.url)
        assert visible_nodes(win) == [
            "role=db (1)", "db-1", "role=web (2)", "web-1", "web-2", "(no role) (1)", "bare",
        ]  # fmt: skip
        assert header_counts(win, "role=web") == "2 online · 0 stale · 0 offline"
        assert win.proxy.index(0, Column.STATE).data() == "▾"
        assert win.shown_label.text() == "4 of 4 shown"
        win.close()

    def test_sorting_and_filter_work_inside_groups(self, qtbot: QtBot, fleet: Fleet) -> None:
        """A descending sort reverses nodes within each group, not the groups; the filter keeps headers it needs."""
        win = grouped_window(qtbot, fleet.collector.url)
        win.table.sortByColumn(Column.NODE, Qt.SortOrder.DescendingOrder)
        assert visible_nodes(win) == [
            "role=db (1)", "db-1", "role=web (2)", "web-2", "web-1", "(no role) (1)", "bare",
        ]  # fmt: skip
        win.filter_box.setText("web")
        assert visible_nodes(win) == ["role=web (2)", "web-2", "web-1"]
        assert win.shown_label.text() == "2 of 4 shown"
        win.filter_box.setText("label:dc=fra")
        assert visible_nodes(win) == ["role=db (1)", "db-1", "role=web (1)", "web-1"]
        assert header_counts(win, "role=web") == "1 online · 0 stale · 0 offline"
        win.close()

    def test_header_counts_stay_in_view_when_scrolled_sideways(self, qtbot: QtBot, fleet: Fleet) -> None:
        """Scrolled fully right, a group header's state counts are drawn just right of the frozen State and Node."""
        win = grouped_window(qtbot, fleet.collector.url)
        win.resize(640, 400)
        win.splitter.setSizes([360, 280])
        bar, viewport = win.table.horizontalScrollBar(), win.table.viewport()
        assert bar is not None
        assert viewport is not None
        qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=WAIT_MS)
        bar.setValue(bar.maximum())
        row = visible_nodes(win).index("role=web (2)")
        span = win.table.visualRect(win.proxy.index(row, Column.CPU))  # CPU to Last seen, viewport coordinates
        left = win.parts.frozen.frozen_width()  # the overlay covers the viewport left of this
        assert span.left() + 150 < left  # where Qt would start the text: far under the overlay
        image = viewport.grab().toImage()  # the viewport alone: the overlay is the table's child, not in it
        assert ink_pixels(image, QRect(left, span.top(), 100, span.height())) > 20
        below = win.table.visualRect(win.proxy.index(row + 1, Column.CPU))  # a node row: its own cell, as before
        assert below.width() < span.width()
        win.close()

    def test_a_click_on_a_header_collapses_its_group(self, qtbot: QtBot, fleet: Fleet) -> None:
        """Clicking a group header hides its nodes (its counts stay, and so does "N of M"); again shows them."""
        win = grouped_window(qtbot, fleet.collector.url)
        header_row = visible_nodes(win).index("role=web (2)")
        viewport = win.table.viewport()
        assert viewport is not None
        at = win.table.visualRect(win.proxy.index(header_row, Column.CPU)).center()
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=at)  # type: ignore[no-untyped-call]
        assert visible_nodes(win) == ["role=db (1)", "db-1", "role=web (2)", "(no role) (1)", "bare"]
        assert win.proxy.index(header_row, Column.STATE).data() == "▸"
        assert win.shown_label.text() == "4 of 4 shown"
        assert win.selected_node_id is None  # a header is no node
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=at)  # type: ignore[no-untyped-call]
        assert visible_nodes(win)[header_row : header_row + 3] == ["role=web (2)", "web-1", "web-2"]
        win.close()

    def test_group_changes_apply_while_the_order_is_held(self, qtbot: QtBot, fleet: Fleet) -> None:
        """Frozen (or with the pointer over the table), choosing a group and expanding one still put rows in place."""
        win = start_window(qtbot, fleet.collector.url, 4)
        qtbot.waitUntil(lambda: win.filter_bar.group_box.findData("role") >= 0, timeout=WAIT_MS)
        win.table.sortByColumn(Column.NODE, Qt.SortOrder.AscendingOrder)
        win.toggle_freeze()
        win.filter_bar.choose_group("role")
        assert visible_nodes(win)[:2] == ["role=db (1)", "db-1"]
        win.proxy.toggle_group("role=web")
        win.proxy.toggle_group("role=web")
        assert visible_nodes(win)[2:5] == ["role=web (2)", "web-1", "web-2"]
        win.table.sortByColumn(Column.NODE, Qt.SortOrder.DescendingOrder)  # a header click sorts, held or not
        assert visible_nodes(win)[2:5] == ["role=web (2)", "web-2", "web-1"]
        win.filter_box.setText("web")
        win.filter_box.clear()  # rows the filter brings back go in place, not to the bottom
        assert visible_nodes(win) == [
            "role=db (1)", "db-1", "role=web (2)", "web-2", "web-1", "(no role) (1)", "bare",
        ]  # fmt: skip
        win.close()

    def test_grouped_proxy_is_a_valid_model(self, qtbot: QtBot, qtmodeltester: ModelTester, fleet: Fleet) -> None:
        """With header rows among the nodes, the proxy still passes Qt's model checks."""
        win = grouped_window(qtbot, fleet.collector.url, key="dc")
        assert visible_nodes(win)[0] == "dc=fra (2)"
        check_model(qtmodeltester, win.proxy)
        win.close()

    def test_group_choice_is_remembered(self, qtbot: QtBot, fleet: Fleet, tmp_path: Path) -> None:
        """The label chosen comes back in the next window, grouped at once."""
        settings = QSettings(str(tmp_path / "viewer.conf"), QSettings.Format.IniFormat)
        grouped_window(qtbot, fleet.collector.url, settings=settings).close()
        again = start_window(qtbot, fleet.collector.url, 4, settings=settings)
        assert again.filter_bar.group_key == "role"
        assert "role=web (2)" in visible_nodes(again)
        again.filter_bar.choose_group("")
        assert not again.proxy.header_rows()
        assert sorted(visible_nodes(again)) == ["bare", "db-1", "web-1", "web-2"]
        again.close()


class TestGroupCountsFromTheWire:
    def test_a_killed_agent_moves_its_group_counts(self, qtbot: QtBot, tmp_path: Path) -> None:
        """A web agent killed turns its group's counts from 2 online to stale, then offline."""
        running = Fleet(tmp_path)
        try:
            win = grouped_window(qtbot, running.collector.url)
            running.agents["web-2"].kill()
            qtbot.waitUntil(lambda: header_counts(win, "role=web") == "1 online · 0 stale · 1 offline", timeout=WAIT_MS)
            assert header_counts(win, "role=db") == "1 online · 0 stale · 0 offline"
            assert win.shown_label.text() == "4 of 4 shown"
            win.close()
        finally:
            running.group.close()


class TestVisiblePart:
    @pytest.mark.parametrize(
        ("span", "expected"),
        [
            (QRect(200, 0, 300, 20), QRect(200, 0, 300, 20)),  # not scrolled: where Qt puts it
            (QRect(-100, 0, 500, 20), QRect(150, 0, 250, 20)),  # scrolled: from the overlay's right edge
            (QRect(-400, 0, 500, 20), QRect(-400, 0, 500, 20)),  # wholly under the overlay: nothing to move
        ],
    )
    def test_the_counts_start_right_of_the_overlay(self, span: QRect, expected: QRect) -> None:
        """A header's counts are drawn from the first pixel right of a 150-pixel overlay, or where Qt puts them."""
        assert visible_part(span, 150) == expected
