"""Fixtures of the viewer tests: a real loopback subscribe server and a link with fast backoff."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PyQt6.QtCore import QAbstractItemModel

from tests.viewer.factories import snapshot
from tests.viewer.subscribe_server import SubscribeServer
from viewer.backoff import Backoff
from viewer.link import CollectorLink, LinkConfig

if TYPE_CHECKING:  # importing it at conftest load time runs before pytest-qt picks its Qt binding
    from pytestqt.modeltest import ModelTester

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # git-ignored: screenshots for people


def fast_backoff() -> Backoff:
    """Retry after 50-200 ms without jitter, so reconnect tests take a fraction of a second."""
    return Backoff(initial_s=0.05, max_s=0.2, auth_failed_s=30.0, uniform=lambda _low, _high: 0.0)


@pytest.fixture
def server() -> Iterator[SubscribeServer]:
    """A started subscribe server whose snapshot holds nodes a, b and c."""
    srv = SubscribeServer(lambda: snapshot("a", "b", "c"))
    srv.start()
    yield srv
    srv.close()


def make_link(url: str, token: str | None = None) -> CollectorLink:
    """A link to ``url`` with fast backoff (not started)."""
    return CollectorLink(LinkConfig(collector_url=url, token=token), backoff=fast_backoff())


def check_model(tester: ModelTester, model: QAbstractItemModel) -> None:
    """Run pytest-qt's model tester in pure Python mode (its signature is untyped)."""
    tester.check(model, force_py=True)  # type: ignore[no-untyped-call]


def link_threads() -> list[threading.Thread]:
    """Network threads of viewer links still alive."""
    return [thread for thread in threading.enumerate() if thread.name == "nodewatch-viewer-link"]
