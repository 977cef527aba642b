"""The two status widgets: the connection indicator (status bar) and the banner across the table.

Thin QLabel subclasses that show what ``viewer.status`` words say, as plain text, and
restyle only on a change (a stylesheet change re-polishes the widget: costly at 10 Hz).

Not here: the wording (``viewer.status``). UI thread only.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel

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
