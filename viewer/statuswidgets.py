"""The two status widgets: the connection indicator (status bar) and the banner across the table,
and ``side_by_side``, the window's table-beside-pane layout.

Thin QLabel subclasses that show what ``viewer.status`` words say, as plain text, and
restyle only on a change (a stylesheet change re-polishes the widget: costly at 10 Hz).

Not here: the wording (``viewer.status``). UI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from viewer.format import plain_tooltip
from viewer.linkstate import LinkState, Phase
from viewer.status import Banner, BannerKind, describe_state

_PHASE_COLOUR: Final[dict[Phase, str]] = {
    Phase.CONNECTING: "#8a6d00",
    Phase.CONNECTED: "#1e7b1e",
    Phase.RECONNECTING: "#b35c00",
    Phase.AUTH_FAILED: "#b00020",
    Phase.STOPPED: "#555555",
}
_BANNER_STYLE: Final[dict[BannerKind, str]] = {
    BannerKind.PROBLEM: "background: #fde2e1; color: #6b0f0f; padding: 6px; font-weight: bold;",
    BannerKind.HINT: "background: #e6eefc; color: #1a3c6e; padding: 6px;",
}


class _PlainLabel(QLabel):
    def __init__(self) -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.PlainText)

    def _restyle(self, text: str, style: str) -> None:
        if self.text() != text:
            self.setText(text)
        if self.styleSheet() != style:
            self.setStyleSheet(style)


class ConnectionLabel(_PlainLabel):
    """'● connected', '● reconnecting: retry in 3 s', in the phase's colour; the detail in the tooltip."""

    def show_state(self, state: LinkState, now_s: float) -> None:
        """Show ``state`` at monotonic time ``now_s``."""
        self._restyle("● " + describe_state(state, now_s), f"color: {_PHASE_COLOUR[state.phase]}; font-weight: bold;")
        self.setToolTip(plain_tooltip(state.detail) or "")


class BannerLabel(_PlainLabel):
    """The banner across the table: hidden when all is well."""

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.hide()

    def show_banner(self, banner: Banner | None) -> None:
        """Show ``banner``, or hide."""
        if banner is None:
            self.hide()
            return
        self._restyle(banner.text, _BANNER_STYLE[banner.kind])
        self.show()


def side_by_side(left_widgets: Sequence[QWidget], right: QWidget, table_px: int) -> QSplitter:
    """``left_widgets`` stacked on the left (filter row, banner, table), ``right`` (the pane) beside them.

    The table gets what its columns need (``table_px``, plus the scroll bar); the charts read fine narrower.
    """
    left = QWidget()
    layout = QVBoxLayout(left)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in left_widgets:
        layout.addWidget(widget)
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.addWidget(left)
    splitter.addWidget(right)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 2)
    wanted_px = table_px + 20  # the vertical scroll bar (16 px in Fusion) and the frame
    splitter.setSizes([wanted_px, max(360, 1280 - wanted_px)])
    return splitter
