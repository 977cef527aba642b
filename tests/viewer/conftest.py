"""Fixtures of the viewer tests: a real loopback subscribe server. Helpers live in ``tests.viewer.helpers``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.messages import snapshot
from tests.viewer.subscribe_server import SubscribeServer


@pytest.fixture
def server() -> Iterator[SubscribeServer]:
    """A started subscribe server whose snapshot holds nodes a, b and c."""
    srv = SubscribeServer(lambda: snapshot("a", "b", "c"))
    srv.start()
    yield srv
    srv.close()
