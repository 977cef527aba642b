"""``WindowMemory``: what the viewer remembers between runs, in a ``QSettings``.

Kept: the table's sort column and order, which columns are hidden, their widths, the label
rows are grouped by, the splitter between table and pane, the window's geometry and docks
(the alerts panel), the detail pane's picked history range, and the last collector URL.
Columns are stored by name (not by position), so a column added in a later version
cannot inherit another's width; a value that does not parse is ignored, never trusted
(the file is the user's, but it may be old or hand-edited).

Not here: where the settings live (``viewer.cli`` opens the user's; tests pass one in a
temporary file) or any default look (``viewer.table``). UI thread only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from PyQt6.QtCore import QByteArray, QSettings, Qt

from viewer.cells import Column
from viewer.historyload import RANGES

if TYPE_CHECKING:
    from viewer.window import MainWindow

# Organisation and application names of the user's settings file (e.g. ~/.config/nodewatch/viewer.conf).
SETTINGS_ORGANISATION: Final = "nodewatch"
SETTINGS_APPLICATION: Final = "viewer"
_URL_KEY: Final = "collector/url"
_GROUP_KEY: Final = "table/group_by"
_RANGE_KEY: Final = "detail/range"
# A label key, as shared/limits.py bounds them: anything else in the file is not one.
_LABEL_KEY: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,62}")
# A width outside this is a broken file, not a choice: Qt would make such a column unusable.
_MIN_WIDTH_PX: Final = 20
_MAX_WIDTH_PX: Final = 2000


def user_settings() -> QSettings:
    """The user's own settings (native format and place)."""
    return QSettings(SETTINGS_ORGANISATION, SETTINGS_APPLICATION)


def remembered_url(settings: QSettings) -> str | None:
    """The collector URL the viewer last followed, or None."""
    value = settings.value(_URL_KEY)
    return value if isinstance(value, str) and value else None


def _column(name: object) -> Column | None:
    return Column.__members__.get(name) if isinstance(name, str) else None


def _names(value: object) -> list[str]:
    """A QSettings list: one string comes back as a str, none as None (IniFormat)."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class WindowMemory:
    """Restores a window's remembered layout, and saves it when the window closes."""

    def __init__(self, settings: QSettings) -> None:
        self._settings = settings

    def restore(self, window: MainWindow) -> None:
        """Apply what was saved; anything missing or broken keeps the window's default."""
        settings, table = self._settings, window.table
        header = table.horizontalHeader()
        assert header is not None
        for name in _names(settings.value("table/hidden")):
            column = _column(name)
            if column is not None and column not in (Column.NODE, Column.STATE):
                table.setColumnHidden(column, True)
        for column in Column:
            width = settings.value(f"table/width/{column.name}")
            if isinstance(width, str) and width.isdigit() and _MIN_WIDTH_PX <= int(width) <= _MAX_WIDTH_PX:
                header.resizeSection(column, int(width))
        sort_column = _column(settings.value("table/sort_column"))
        order = settings.value("table/sort_order")
        if sort_column is not None and order in {"ascending", "descending"}:
            qt_order = Qt.SortOrder.AscendingOrder if order == "ascending" else Qt.SortOrder.DescendingOrder
            table.sortByColumn(sort_column, qt_order)
        group = settings.value(_GROUP_KEY)
        if isinstance(group, str) and _LABEL_KEY.fullmatch(group):
            window.filter_bar.choose_group(group)
        picked = [choice for choice in RANGES if choice.label == settings.value(_RANGE_KEY)]
        if picked:  # the pane shows it for the first node selected ("24 h · select a node" until then)
            window.detail.ranges.pick(picked[0])
            window.detail.ranges.load(None)
        splitter = settings.value("window/splitter")
        if isinstance(splitter, QByteArray):
            window.splitter.restoreState(splitter)
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            window.restoreGeometry(geometry)
        docks = settings.value("window/docks")
        if isinstance(docks, QByteArray):
            window.restoreState(docks)

    def save(self, window: MainWindow) -> None:
        """Write the window's layout and collector URL now."""
        settings, table = self._settings, window.table
        header = table.horizontalHeader()
        assert header is not None
        hidden = [column.name for column in Column if table.isColumnHidden(column)]
        settings.setValue("table/hidden", hidden)
        for column in Column:
            if not table.isColumnHidden(column):
                settings.setValue(f"table/width/{column.name}", str(header.sectionSize(column)))
        section = header.sortIndicatorSection()
        if 0 <= section < len(Column):
            settings.setValue("table/sort_column", Column(section).name)
            ascending = header.sortIndicatorOrder() is Qt.SortOrder.AscendingOrder
            settings.setValue("table/sort_order", "ascending" if ascending else "descending")
        settings.setValue(_GROUP_KEY, window.filter_bar.group_key)
        settings.setValue(_RANGE_KEY, window.detail.ranges.choice.label)
        settings.setValue("window/splitter", window.splitter.saveState())
        settings.setValue("window/geometry", window.saveGeometry())
        settings.setValue("window/docks", window.saveState())
        if window.collector_url:
            settings.setValue(_URL_KEY, window.collector_url)
        settings.sync()
