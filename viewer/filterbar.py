"""``FilterBar``: the row above the table: filter box, "Group by", "paused" mark, "N of M shown", the filter error.

It also keeps whether the row order is held (pointer over the table, or frozen with Z or
Space), shows the mark that says so, and emits ``hold_changed(bool)`` for the proxy.

The box's text is parsed by ``viewer.filtering``; a good filter is emitted as
``filter_changed(NodeFilter)``, a bad one is said under the box (and the table keeps its
last good filter, so it is never silently empty). Every label is plain text. The "Group by"
choice lists "none" and every label key seen in the fleet, and emits ``group_changed(key)``
("" for none).

Not here: the table, or what the filter does to rows (``viewer.sorting``). UI thread only.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from viewer.detail import plain_label
from viewer.filtering import FilterError, parse

# "‖", not "⏸" (U+23F8): Xvfb's DejaVu fonts have no glyph for the latter, which drew as a box.
PAUSED_HOVER: Final = "‖ order paused (pointer over the table)"
PAUSED_FROZEN: Final = "‖ frozen: press Z or Space to let rows move"
NO_GROUPS: Final = "Group by: none"
_PLACEHOLDER: Final = "Filter: text, state:offline, cpu>80, mem>90, disk>90, label:role=web, /regex/  (Ctrl+F)"


class FilterBar(QWidget):
    """The filter box and the small labels around it."""

    filter_changed = pyqtSignal(object)  # a viewer.filtering.NodeFilter
    hold_changed = pyqtSignal(bool)  # True: the row order should hold still
    group_changed = pyqtSignal(str)  # a label key, or "" for no groups

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._hovered = False
        self.frozen = False
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText(_PLACEHOLDER)
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self._on_text)
        self.filter_error = plain_label()
        self.filter_error.setStyleSheet("color: #b00020;")
        self.filter_error.hide()
        self.shown_label = plain_label()
        self.paused_label = plain_label()
        self.paused_label.setStyleSheet("color: #8a5a00; font-weight: bold;")
        self.paused_label.hide()
        self.group_box = QComboBox()
        self.group_box.addItem(NO_GROUPS, "")
        self.group_box.setToolTip("Group rows by a label of the nodes")
        self.group_box.currentIndexChanged.connect(self._on_group)
        row = QHBoxLayout()
        row.addWidget(self.filter_box, 1)
        row.addWidget(self.group_box)
        row.addWidget(self.paused_label)
        row.addWidget(self.shown_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.filter_error)

    def set_counts(self, shown: int, total: int) -> None:
        """Say how many rows the filter keeps."""
        text = f"{shown:,} of {total:,} shown"
        if self.shown_label.text() != text:
            self.shown_label.setText(text)

    @property
    def group_key(self) -> str:
        """The label key chosen, or "" for none."""
        key = self.group_box.currentData()
        return key if isinstance(key, str) else ""

    def set_label_keys(self, keys: set[str]) -> None:
        """Offer ``keys`` (and the one chosen, even if no node has it now) as choices."""
        chosen = self.group_key
        wanted = sorted(keys | ({chosen} if chosen else set()))
        have = [self.group_box.itemData(i) for i in range(1, self.group_box.count())]
        if have == wanted:
            return
        self.group_box.blockSignals(True)
        try:
            while self.group_box.count() > 1:
                self.group_box.removeItem(1)
            for key in wanted:
                self.group_box.addItem(f"Group by: {key}", key)
            self.group_box.setCurrentIndex(max(0, self.group_box.findData(chosen)))
        finally:
            self.group_box.blockSignals(False)

    def choose_group(self, key: str) -> None:
        """Group by ``key`` ("" for none), offering it if it was not yet."""
        if key and self.group_box.findData(key) < 0:
            self.group_box.addItem(f"Group by: {key}", key)
        self.group_box.setCurrentIndex(max(0, self.group_box.findData(key)))

    def _on_group(self, _index: int) -> None:
        self.group_changed.emit(self.group_key)

    def set_paused(self, text: str | None) -> None:
        """Show the "paused" mark with ``text``, or hide it."""
        self.paused_label.setText(text or "")
        self.paused_label.setVisible(text is not None)

    def _on_text(self, text: str) -> None:
        try:
            node_filter = parse(text)
        except FilterError as exc:
            self.filter_error.setText(f"Filter not applied: {exc}")
            self.filter_error.show()
            return
        self.filter_error.hide()
        self.filter_changed.emit(node_filter)

    def set_hovered(self, hovered: bool) -> None:
        """The pointer entered (True) or left the table."""
        self._hovered = hovered
        self._update_hold()

    def toggle_freeze(self) -> None:
        """Freeze the row order, or let it move again."""
        self.frozen = not self.frozen
        self._update_hold()

    def _update_hold(self) -> None:
        held = self._hovered or self.frozen
        self.set_paused((PAUSED_FROZEN if self.frozen else PAUSED_HOVER) if held else None)
        self.hold_changed.emit(held)
