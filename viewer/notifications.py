"""Optional desktop notifications of alerts newly firing or resolved: ``Notifier`` and its ``NotificationThrottle``.

Off by default; the "Desktop notifications" toggle is remembered in QSettings. Messages go
through ``QSystemTrayIcon.showMessage`` when the desktop has a system tray; when it has
none, the toggle says so instead of failing silently. News is rate-limited like
Alertmanager's ``group_wait``/``group_interval`` (docs/alerts.md 5): the first news waits
``GATHER_S`` for company, later news at least ``MIN_GAP_S`` after the last message, so a
storm of 500 nodes going offline is one message, not 500 bubbles.

Not here: what is news (``viewer.alertbook``). The throttle is pure (clock passed in);
``Notifier`` is UI thread only. Peer strings go into the message as plain text (tray
messages are not rendered as markup on any platform Qt supports).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from PyQt6.QtCore import QObject, QSettings, QTimer
from PyQt6.QtGui import QAction, QIcon
from PyQt6.QtWidgets import QApplication, QStyle, QSystemTrayIcon

from viewer.alertbook import AlertChange

# A storm (a rack losing power) arrives over a few 100 ms flushes: wait this long to tell it as one.
GATHER_S: Final = 2.0
# Then at most one bubble this often: more is noise a person stops reading.
MIN_GAP_S: Final = 30.0
# Lines listed in one message; desktop bubbles show a few lines at most.
MAX_LINES: Final = 5
SETTINGS_KEY: Final = "notifications/enabled"
_TOGGLE_TEXT: Final = "Desktop notifications"
NO_TRAY_TEXT: Final = "Desktop notifications (no system tray on this desktop)"

ShowMessage = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Note:
    """One desktop message."""

    title: str
    body: str


def _line(change: AlertChange) -> str:
    key = change.key
    where = f"{key.node_id} {key.instance}" if key.instance else key.node_id
    words = "FIRING" if change.new == "firing" else "resolved"
    return f"{words} {key.alertname} on {where}" + (f": {change.summary}" if change.summary else "")


class NotificationThrottle:
    """Gathers news and says when to tell it; pure, ``now_s`` is a monotonic clock."""

    def __init__(self, gather_s: float = GATHER_S, min_gap_s: float = MIN_GAP_S) -> None:
        self._gather_s = gather_s
        self._min_gap_s = min_gap_s
        self._last_sent_s = float("-inf")
        self._first_news_s: float | None = None
        self._firing = 0
        self._resolved = 0
        self._lines: list[str] = []  # at most MAX_LINES: the rest is counted only

    def add(self, changes: Sequence[AlertChange], now_s: float) -> None:
        """Hold ``changes`` for the next message."""
        if not changes:
            return
        if self._first_news_s is None:
            self._first_news_s = now_s
        for change in changes:
            if change.new == "firing":
                self._firing += 1
            else:
                self._resolved += 1
            if len(self._lines) < MAX_LINES:
                self._lines.append(_line(change))

    def due_at(self) -> float | None:
        """When the held news should be told (monotonic s), or None if there is none."""
        if self._first_news_s is None:
            return None
        return max(self._first_news_s + self._gather_s, self._last_sent_s + self._min_gap_s)

    def take(self, now_s: float) -> Note | None:
        """The message to show now, if one is due."""
        due = self.due_at()
        if due is None or now_s < due:
            return None
        total = self._firing + self._resolved
        if total == 1:
            title, body = self._lines[0], ""
        else:
            counted = ((self._firing, "firing"), (self._resolved, "resolved"))
            title = "nodewatch alerts: " + ", ".join(f"{count:,} {word}" for count, word in counted if count)
            more = total - len(self._lines)
            body = "\n".join(self._lines) + (f"\nand {more:,} more" if more > 0 else "")
        self._last_sent_s, self._first_news_s = now_s, None
        self._firing = self._resolved = 0
        self._lines = []
        return Note(title, body)


class Notifier(QObject):
    """The toggle, the tray icon, and the timer that tells held news when it is due."""

    def __init__(
        self,
        settings: QSettings | None,
        *,
        show: ShowMessage | None = None,
        clock: Callable[[], float] = time.monotonic,
        throttle: NotificationThrottle | None = None,
        parent: QObject | None = None,
    ) -> None:
        """``show``: where a message goes (default: the tray icon, when the desktop has a tray)."""
        super().__init__(parent)
        self._settings = settings
        self._clock = clock
        self._throttle = throttle if throttle is not None else NotificationThrottle()
        self._tray: QSystemTrayIcon | None = None
        if show is None and QSystemTrayIcon.isSystemTrayAvailable():
            self._tray = QSystemTrayIcon(self._icon(), self)
            show = self._show_in_tray
        self._show = show
        self.shown: list[Note] = []  # what was told, newest last (bounded below), for the window's status
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tell_due)
        remembered = settings.value(SETTINGS_KEY) if settings is not None else None
        self.action = QAction(_TOGGLE_TEXT if self.available else NO_TRAY_TEXT, self)
        self.action.setCheckable(True)
        self.action.setChecked(remembered in {True, "true"})
        self.action.toggled.connect(self._on_toggled)
        if self._tray is not None:
            self._tray.setVisible(self.enabled)

    @property
    def available(self) -> bool:
        """True if messages can be shown on this desktop."""
        return self._show is not None

    @property
    def enabled(self) -> bool:
        """True if the user turned notifications on."""
        return self.action.isChecked()

    def notify(self, changes: Sequence[AlertChange]) -> None:
        """Tell ``changes`` (if enabled), gathered and rate-limited."""
        if not self.enabled or not self.available:
            return
        self._throttle.add(changes, self._clock())
        self._schedule()

    def _schedule(self) -> None:
        due = self._throttle.due_at()
        if due is not None and not self._timer.isActive():
            self._timer.start(max(0, round((due - self._clock()) * 1000)))

    def _tell_due(self) -> None:
        note = self._throttle.take(self._clock())
        if note is not None and self._show is not None and self.enabled:
            self._show(note.title, note.body)
            self.shown = [*self.shown[-99:], note]
        self._schedule()

    def _on_toggled(self, on: bool) -> None:
        if self._settings is not None:
            self._settings.setValue(SETTINGS_KEY, on)
        if self._tray is not None:
            self._tray.setVisible(on)

    def _show_in_tray(self, title: str, body: str) -> None:
        assert self._tray is not None
        self._tray.showMessage(title, body, QSystemTrayIcon.MessageIcon.Information)

    @staticmethod
    def _icon() -> QIcon:
        style = QApplication.style()
        return QIcon() if style is None else style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
