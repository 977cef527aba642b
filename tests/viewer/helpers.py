"""Helpers shared by the viewer tests: links with fast backoff, model checks, signal recorders.

Tests import from here (and from ``tests.viewer.factories``), never from conftest or
another test module. Not here: fixtures (``conftest.py``) or wire builders (``factories.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import QAbstractItemModel, Qt
from PyQt6.QtGui import QColor, QTextDocument

from shared.messages import Snapshot, Update
from viewer.backoff import Backoff
from viewer.batching import NodeBatch, PendingBatch
from viewer.link import CollectorLink, LinkConfig

if TYPE_CHECKING:  # importing it at collection time runs before pytest-qt picks its Qt binding
    from pytestqt.modeltest import ModelTester
    from pytestqt.qtbot import QtBot

    from viewer.window import MainWindow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # git-ignored: screenshots for people
# What a hostile agent might put in any string field: markup, an image from the operator's disk, a link.
HOSTILE_TEXT = '<b>X</b><img src=/etc/passwd><a href="http://evil">login</a>'


def fast_backoff() -> Backoff:
    """Retry after 50-200 ms without jitter, so reconnect tests take a fraction of a second."""
    return Backoff(initial_s=0.05, max_s=0.2, auth_failed_s=30.0, uniform=lambda _low, _high: 0.0)


def make_link(url: str, token: str | None = None) -> CollectorLink:
    """A link to ``url`` with fast backoff (not started)."""
    return CollectorLink(LinkConfig(collector_url=url, token=token), backoff=fast_backoff())


def check_model(tester: ModelTester, model: QAbstractItemModel) -> None:
    """Run pytest-qt's model tester in pure Python mode (its signature is untyped)."""
    tester.check(model, force_py=True)  # type: ignore[no-untyped-call]


def link_threads() -> list[threading.Thread]:
    """Network threads of viewer links still alive."""
    return [thread for thread in threading.enumerate() if thread.name == "nodewatch-viewer-link"]


def batch_of(*messages: Snapshot | Update) -> NodeBatch:
    """Merge messages the way the link does and return the batch."""
    pending = PendingBatch()
    for message in messages:
        pending.add(message)
    batch = pending.take()
    assert batch is not None
    return batch


@dataclass
class Signals:
    """Every structural or data signal a model emitted, in order."""

    events: list[tuple[str, int, int]] = field(default_factory=list)

    def attach(self, model: QAbstractItemModel) -> None:
        """Record ``model``'s signals from now on."""
        model.dataChanged.connect(lambda tl, br, _roles=(): self.events.append(("changed", tl.row(), br.row())))
        model.rowsInserted.connect(lambda _p, first, last: self.events.append(("inserted", first, last)))
        model.rowsRemoved.connect(lambda _p, first, last: self.events.append(("removed", first, last)))
        model.modelReset.connect(lambda: self.events.append(("reset", -1, -1)))
        model.layoutChanged.connect(lambda: self.events.append(("layout", -1, -1)))


def greyed(win: MainWindow) -> bool:
    """Whether the table shows its data greyed out (a function, so mypy does not narrow it)."""
    return not win.model.connected


def visible_nodes(win: MainWindow) -> list[str]:
    """The node ids of the table's rows, top to bottom."""
    return [str(win.proxy.index(r, 0).data()) for r in range(win.proxy.rowCount())]


def rendered_text(text: str) -> str:
    """What Qt shows for ``text`` in a tooltip or an AutoText label: rich text is rendered, plain shown as is."""
    document = QTextDocument()
    if Qt.mightBeRichText(text):  # type: ignore[attr-defined]  # missing from the PyQt6 stubs
        document.setHtml(text)
    else:
        document.setPlainText(text)
    return document.toPlainText()


def start_window(qtbot: QtBot, url: str, rows: int, **settings: Any) -> MainWindow:
    """A shown window following ``url``, once its table holds ``rows`` rows and it is connected."""
    from viewer.window import MainWindow  # at call time: see TYPE_CHECKING above

    win = MainWindow(make_link(url), collector_url=url, **settings)
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    qtbot.waitUntil(lambda: win.model.rowCount() == rows and win.model.connected, timeout=5000)
    return win


def contrast_ratio(first: QColor, second: QColor) -> float:
    """WCAG 2's contrast ratio of two colours (1 to 21; 4.5 is its minimum for body text)."""

    def luminance(colour: QColor) -> float:
        channels = [value / 255 for value in (colour.red(), colour.green(), colour.blue())]
        linear = [value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4 for value in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
