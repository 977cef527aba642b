"""Readable in light and dark mode: tinted cells keep their text legible, and the paused mark has a glyph."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtCore import QAbstractItemModel, Qt
from PyQt6.QtGui import QColor, QFontMetrics, QPalette
from PyQt6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot

from tests.support.messages import WALL_T0, entry, update
from tests.viewer.helpers import batch_of, contrast_ratio
from viewer.alertbook import Alert
from viewer.alertspanel import AlertTableModel
from viewer.alertwire import AlertKey
from viewer.filterbar import PAUSED_FROZEN, PAUSED_HOVER, FilterBar
from viewer.model import NodeTableModel

# WCAG 2 AA for body text.
MIN_CONTRAST = 4.5
PALETTES = {
    "light": {"Base": "#ffffff", "Text": "#1a1a1a", "Window": "#efefef", "WindowText": "#1a1a1a"},
    "dark": {"Base": "#181818", "Text": "#e8e8e8", "Window": "#202124", "WindowText": "#e8e8e8"},
}


@pytest.fixture(params=sorted(PALETTES))
def palette(request: pytest.FixtureRequest) -> Iterator[QPalette]:
    """The application under a light or a dark system palette, put back after the test."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    saved = QPalette(app.palette())
    system = QPalette()
    for role, colour in PALETTES[request.param].items():
        system.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    app.setPalette(system)
    yield system
    app.setPalette(saved)


def tinted_cells(model: QAbstractItemModel, palette: QPalette) -> list[tuple[str, float]]:
    """Every cell with a background of its own: (its text, contrast of the text colour drawn on it)."""
    cells = []
    for row in range(model.rowCount()):
        for column in range(model.columnCount()):
            index = model.index(row, column)
            background = index.data(Qt.ItemDataRole.BackgroundRole)
            if background is None:
                continue
            foreground = index.data(Qt.ItemDataRole.ForegroundRole)
            text = QColor(foreground) if foreground is not None else palette.color(QPalette.ColorRole.Text)
            cells.append((str(index.data()), contrast_ratio(text, QColor(background))))
    return cells


class TestTintedCells:
    def test_state_and_threshold_cells_read_in_either_palette(self, qtbot: QtBot, palette: QPalette) -> None:
        """State colours and CPU/memory threshold tints keep their text legible (4.5:1) in light and dark mode."""
        model = NodeTableModel()
        view = QTableView()
        qtbot.addWidget(view)
        view.setModel(model)
        nodes = [entry("calm", cpu=10.0), entry("busy", cpu=85.0), entry("hot", cpu=97.0)]
        nodes += [entry("late", "stale"), entry("gone", "offline")]
        model.apply_batch(batch_of(update(*nodes)), WALL_T0)
        cells = tinted_cells(model, view.palette())
        texts = {text for text, _ in cells}
        assert {"online", "stale", "offline"} <= texts
        assert any("85.0" in text for text in texts)
        assert any("97.0" in text for text in texts)
        assert [cell for cell in cells if cell[1] < MIN_CONTRAST] == []

    def test_alert_state_cells_read_in_either_palette(self, qtbot: QtBot, palette: QPalette) -> None:
        """A firing or unknown alert's State cell is legible (4.5:1) in either mode (dark drew light text on pink)."""
        model = AlertTableModel()
        view = QTableView()
        qtbot.addWidget(view)
        view.setModel(model)
        alerts = [
            Alert(AlertKey("node_offline", "web-1", ""), "critical", "firing", WALL_T0, "gone"),
            Alert(AlertKey("cpu_busy", "web-2", ""), "warning", "unknown", WALL_T0, "silent"),
        ]
        model.set_alerts(alerts, 0.0)
        cells = tinted_cells(model, view.palette())
        assert sorted(text for text, _ in cells) == ["firing", "unknown (node silent)"]
        assert [cell for cell in cells if cell[1] < MIN_CONTRAST] == []


class TestPausedMark:
    def test_paused_mark_has_a_glyph_in_the_label_font(self, qtbot: QtBot) -> None:
        """Every character of the "paused" and "frozen" marks exists in the label's font (Xvfb's "⏸" drew as a box)."""
        bar = FilterBar()
        qtbot.addWidget(bar)
        metrics = QFontMetrics(bar.paused_label.font())
        for text in (PAUSED_HOVER, PAUSED_FROZEN):
            missing = [char for char in text if not metrics.inFontUcs4(ord(char))]
            assert missing == [], text
