"""Fixtures of the viewer tests: a real loopback subscribe server, the pointer put away after each test.

Helpers live in ``tests.viewer.helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtGui import QCursor
from PyQt6.QtWidgets import QApplication

from tests.support.messages import snapshot
from tests.viewer.subscribe_server import SubscribeServer


@pytest.fixture(autouse=True)
def pointer_away(qapp: QApplication) -> Iterator[None]:
    """After each test, move the pointer off every window, so no test inherits a hovered table."""
    yield
    # Off every screen: the next test's window opens where this one was, and a pointer left over
    # its table would hold the row order (issue 16, "rows hold still under the pointer").
    QCursor.setPos(-10_000, -10_000)


@pytest.fixture
def server() -> Iterator[SubscribeServer]:
    """A started subscribe server whose snapshot holds nodes a, b and c."""
    srv = SubscribeServer(lambda: snapshot("a", "b", "c"))
    srv.start()
    yield srv
    srv.close()
