"""The detail pane's range picker (15 min ... 30 d) and ``RangeLoader``: the request in flight and what the pane says.

``RangePicker`` is a row of exclusive buttons and one status line (plain text) that says
what the charts show ("24 h · 1 min averages of the 1m tier ..."), that a range is loading,
or why it failed, in words. ``RangeLoader`` keeps the picked range across node changes,
sends a ranged ``HistoryRequest`` (through its ``request`` signal; the window hands it to
the link, whose network thread sends it) for every node shown, accepts only the answer to
the newest request, and fails it in words when the connection drops or no answer comes in
``RANGE_TIMEOUT_S``. A range picked while disconnected is asked again once connected.

Not here: drawing (``viewer.overview``), the network (``viewer.worker``). UI thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QToolButton, QWidget

from shared.messages import HistoryRange, HistoryRequest
from viewer.historyload import (
    LIVE,
    RANGE_TIMEOUT_S,
    RANGES,
    PendingRange,
    RangeChoice,
    RangeDrawing,
    choice_named,
    describe_drawn,
    describe_failure,
    range_request,
)
from viewer.linkstate import LinkState, Phase

LIVE_WORDS: Final = "15 min · live: the collector's recent window, then every update"
# The connection dropping this often with a range in flight and no answer between is taken as the
# collector refusing ranged requests (one that predates them closes with 1008 schema, docs/protocol.md
# 5.9): the pane stops asking by itself, so it never drives a reconnect loop. A click asks again.
MAX_DROPS_IN_FLIGHT: Final = 2
REFUSED_WORDS: Final = (
    "the connection closed twice while loading it: this collector may not serve stored ranges "
    "(it predates them?); click the range to try again"
)


class RangePicker(QWidget):
    """Exclusive range buttons and a status line; ``chosen(RangeChoice)`` on a click."""

    chosen = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self._buttons: dict[str, QToolButton] = {}
        for choice in RANGES:
            button = QToolButton()
            button.setText(choice.label)
            button.setCheckable(True)
            button.setObjectName(f"range-{choice.label.replace(' ', '')}")
            source = "live" if choice.live else "from the collector's store"
            button.setToolTip(f"Show the last {choice.label} {source}")
            button.clicked.connect(lambda _checked=False, picked=choice: self.chosen.emit(picked))
            self._group.addButton(button)
            self._buttons[choice.label] = button
            layout.addWidget(button)
        self._buttons[LIVE.label].setChecked(True)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # node ids and collector words are peer text
        self.status.setObjectName("range-status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status, stretch=1)

    def button(self, label: str) -> QToolButton:
        """The button reading ``label`` (e.g. "24 h")."""
        return self._buttons[choice_named(label).label]

    def set_status(self, text: str) -> None:
        """Say what the charts show, what loads, or why it failed."""
        if self.status.text() != text:
            self.status.setText(text)


class RangeLoader(QObject):
    """The picked range, the one request in flight for the shown node, and the words for its state."""

    request = pyqtSignal(HistoryRequest)

    def __init__(
        self,
        picker: RangePicker,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = RANGE_TIMEOUT_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._picker = picker
        self._wall_clock = wall_clock
        self._clock = clock
        self._timeout_s = timeout_s
        self.choice: RangeChoice = LIVE
        self._pending = PendingRange()
        self._node_id: str | None = None
        self._offset_s = 0.0
        self._link: LinkState | None = None  # unknown until the window passes the first change
        self._ask_when_connected = False
        self._drops = 0  # connection drops with a range in flight since the last answer
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._check_overdue)
        picker.set_status(LIVE_WORDS)

    @property
    def waiting(self) -> bool:
        """Whether an answer is awaited."""
        return self._pending.waiting

    def pick(self, choice: RangeChoice) -> None:
        """Remember ``choice`` for this and every later node (the buttons follow)."""
        self.choice = choice
        self._drops = 0
        self._picker.button(choice.label).setChecked(True)

    def load(self, node_id: str | None, server_offset_s: float = 0.0) -> None:
        """Ask for the picked range of ``node_id`` (nothing for the live window, or no node)."""
        self._node_id, self._offset_s = node_id, server_offset_s
        self._pending.clear()
        self._timer.stop()
        self._ask_when_connected = False
        if node_id is None or self.choice.live:
            self._picker.set_status(LIVE_WORDS if self.choice.live else f"{self.choice.label} · select a node")
            return
        if self._drops >= MAX_DROPS_IN_FLIGHT:
            self._fail(REFUSED_WORDS)
            return
        link = self._link
        if link is not None and link.phase is not Phase.CONNECTED:  # the link would drop it: ask once connected
            self._fail(_not_connected(link))
            self._ask_when_connected = True
            return
        request = range_request(node_id, self.choice, self._wall_clock() + server_offset_s)
        self._pending.start(request, self._clock())
        self.request.emit(request)
        self._picker.set_status(f"loading {self.choice.label} of {node_id} from the collector's store ...")
        self._timer.start(round(self._timeout_s * 1000))

    def accept(self, answer: HistoryRange) -> RangeDrawing | None:
        """The drawing of ``answer`` if it answers the request in flight; else None (an older one, another node)."""
        if not self._pending.answers(answer):
            return None
        self._pending.clear()
        self._timer.stop()
        self._drops = 0
        drawing = RangeDrawing.of(answer)
        self._picker.set_status(describe_drawn(self.choice, drawing))
        return drawing

    def on_link_state(self, state: LinkState) -> None:
        """A request in flight fails when the connection drops; one asked while disconnected goes once connected."""
        self._link = state
        if state.phase is Phase.CONNECTED:
            if self._ask_when_connected:
                self.load(self._node_id, self._offset_s)
            return
        if self._pending.waiting:
            self._drops += 1
            self._fail(_not_connected(state))
            self._ask_when_connected = True

    def _check_overdue(self) -> None:
        if self._pending.overdue(self._clock(), self._timeout_s):
            self._fail(f"no answer from the collector in {self._timeout_s:g} s")
        elif self._pending.waiting:  # the clock says not yet: look again when it is due
            self._timer.start(round(max(0.0, self._pending.sent_at + self._timeout_s - self._clock()) * 1000) + 1)

    def _fail(self, why: str) -> None:
        self._pending.clear()
        self._timer.stop()
        self._picker.set_status(describe_failure(self.choice, why))


def _not_connected(state: LinkState) -> str:
    if state.phase is Phase.STOPPED:
        return "the viewer stopped its connection"
    words = f" ({state.detail})" if state.detail else ""
    return f"not connected to the collector{words}; it loads again once connected"
