"""Remembered between runs: layout, picked range and collector URL; dark mode follows the system."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.viewer.helpers import make_link, start_window
from tests.viewer.subscribe_server import SubscribeServer
from viewer.cells import Column
from viewer.cli import parse_config
from viewer.remembered import remembered_url
from viewer.window import MainWindow

URL = "http://127.0.0.1:9"  # never started: these tests need no collector


def settings_in(path: Path) -> QSettings:
    """Settings in an INI file of the test's own."""
    return QSettings(str(path / "viewer.ini"), QSettings.Format.IniFormat)


def open_window(qtbot: QtBot, settings: QSettings) -> MainWindow:
    """A shown window (its link not started) that remembers in ``settings``."""
    win = MainWindow(make_link(URL), collector_url=URL, settings=settings)
    qtbot.addWidget(win)
    win.show()
    return win


class TestRemembered:
    def test_layout_survives_a_restart(self, qtbot: QtBot, tmp_path: Path) -> None:
        """Sort, hidden columns, widths, splitter and window size come back after closing and reopening."""
        first = open_window(qtbot, settings_in(tmp_path))
        first.table.sortByColumn(Column.CPU, Qt.SortOrder.AscendingOrder)
        first.table.setColumnHidden(Column.UPTIME, True)
        header = first.table.horizontalHeader()
        assert header is not None
        header.resizeSection(Column.NET, 250)
        first.setGeometry(40, 50, 760, 560)  # inside the offscreen screen (800x800): Qt keeps restored windows on it
        first.splitter.setSizes([500, 600])
        sizes, geometry = first.splitter.sizes(), first.geometry()
        first.close()
        first.deleteLater()

        second = open_window(qtbot, settings_in(tmp_path))
        header = second.table.horizontalHeader()
        assert header is not None
        assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (Column.CPU, Qt.SortOrder.AscendingOrder)
        assert second.table.isColumnHidden(Column.UPTIME)
        assert not second.table.isColumnHidden(Column.LAST_SEEN)
        assert header.sectionSize(Column.NET) == 250
        assert second.geometry() == geometry
        assert (second.width(), second.height()) == (760, 560)
        assert second.splitter.sizes() == sizes
        second.close()

    def test_first_run_keeps_the_defaults(self, qtbot: QtBot, tmp_path: Path) -> None:
        """With nothing saved, the window opens problems first with every column shown."""
        win = open_window(qtbot, settings_in(tmp_path))
        header = win.table.horizontalHeader()
        assert header is not None
        assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (
            Column.STATE,
            Qt.SortOrder.DescendingOrder,
        )
        assert not any(win.table.isColumnHidden(column) for column in Column)
        win.close()

    def test_broken_settings_are_ignored(self, qtbot: QtBot, tmp_path: Path) -> None:
        """Garbage in the settings file leaves the defaults: no crash, no unusable column."""
        settings = settings_in(tmp_path)
        for key, value in {
            "table/sort_column": "NOPE",
            "table/sort_order": "sideways",
            "table/hidden": ["NODE", "STATE", "bogus"],
            "table/width/NET": "99999",
            "window/geometry": "not bytes",
            "detail/range": "3 weeks",
        }.items():
            settings.setValue(key, value)
        settings.sync()
        win = open_window(qtbot, settings_in(tmp_path))
        header = win.table.horizontalHeader()
        assert header is not None
        assert header.sortIndicatorSection() == Column.STATE
        assert not win.table.isColumnHidden(Column.NODE)
        assert not win.table.isColumnHidden(Column.STATE)
        assert header.sectionSize(Column.NET) < 1000
        assert win.detail.ranges.choice.label == "15 min"
        win.close()

    def test_the_picked_range_survives_a_restart(self, qtbot: QtBot, tmp_path: Path, server: SubscribeServer) -> None:
        """A range picked before closing is picked after reopening, and the first node selected asks for it."""
        first = open_window(qtbot, settings_in(tmp_path))
        first.detail.picker.button("7 d").click()
        first.close()

        second = start_window(qtbot, server.url, 3, settings=settings_in(tmp_path))
        assert second.detail.ranges.choice.label == "7 d"
        assert second.detail.picker.button("7 d").isChecked()
        assert second.detail.picker.status.text() == "7 d · select a node"
        second.select_node("b")
        qtbot.waitUntil(lambda: len(server.requests) == 1, timeout=5000)
        qtbot.wait(200)  # a live-window request would follow at once
        [request] = server.requests
        assert (request.node_id, request.ranged, request.step_s) == ("b", True, 600.0)
        second.close()

    def test_last_collector_url_is_the_next_default(self, qtbot: QtBot, tmp_path: Path) -> None:
        """The URL a window followed is the next run's default; a flag or NODEWATCH_COLLECTOR still wins."""
        open_window(qtbot, settings_in(tmp_path)).close()
        last = remembered_url(settings_in(tmp_path))
        assert last == URL
        config, _level = parse_config([], {}, lambda: last)
        assert config.collector_url == URL
        config, _level = parse_config([], {"NODEWATCH_COLLECTOR": "http://10.0.0.1:9000"}, lambda: last)
        assert config.collector_url == "http://10.0.0.1:9000"
        config, _level = parse_config([], {}, lambda: "not a url")
        assert config.collector_url == "http://127.0.0.1:8765"


@pytest.fixture
def app_palette() -> Iterator[QApplication]:
    """The application, its palette put back after the test."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    saved = QPalette(app.palette())
    yield app
    app.setPalette(saved)


def dark_palette() -> QPalette:
    """A dark system palette, as a desktop in dark mode gives."""
    palette = QPalette()
    for role, colour in {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.Base: "#181818",
        QPalette.ColorRole.Text: "#e8e8e8",
        QPalette.ColorRole.WindowText: "#e8e8e8",
    }.items():
        palette.setColor(role, QColor(colour))
    return palette


class TestDarkMode:
    def test_charts_follow_a_palette_change(self, qtbot: QtBot, tmp_path: Path, app_palette: QApplication) -> None:
        """Switching the system to dark mode turns every chart's background dark, and back."""
        win = open_window(qtbot, settings_in(tmp_path))
        light = QColor(win.palette().color(QPalette.ColorRole.Base))
        app_palette.setPalette(dark_palette())
        qtbot.waitUntil(lambda: win.detail.cpu_chart.background == QColor("#181818"), timeout=2000)
        assert all(chart.background == QColor("#181818") for chart in win.detail.overview.charts)
        axis_text = win.detail.cpu_chart.plot.getAxis("left").textPen().color()
        assert axis_text == QColor("#e8e8e8")
        app_palette.setPalette(QPalette(light, light))
        qtbot.waitUntil(lambda: win.detail.cpu_chart.background != QColor("#181818"), timeout=2000)
        win.close()

    def test_window_opened_in_dark_mode_is_dark(self, qtbot: QtBot, tmp_path: Path, app_palette: QApplication) -> None:
        """A viewer started while the system is dark draws its charts dark from the start."""
        app_palette.setPalette(dark_palette())
        win = open_window(qtbot, settings_in(tmp_path))
        assert win.detail.net_chart.background == QColor("#181818")
        win.close()
