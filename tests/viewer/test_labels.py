"""The viewer's filter box on node labels: ``label:role=web`` and ``label:role`` keep the labelled nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from shared.messages import NodeEntry, NodeFacts, Snapshot, Update
from tests.support.messages import WALL_T0, facts, heartbeat, status
from tests.viewer.helpers import start_window, visible_nodes
from tests.viewer.subscribe_server import SubscribeServer
from viewer.window import MainWindow


def labelled(hostname: str, **labels: str) -> NodeFacts:
    """Facts of ``hostname`` with ``labels`` (none: no labels field)."""
    return facts(hostname).model_copy(update={"labels": labels or None})


def fleet() -> Snapshot:
    """web-1 (role=web), web-2 (role=web-canary), db-1 (role=db), bare (no labels)."""
    nodes = [
        NodeEntry(status=status(node_id), facts=node_facts, last_sample=heartbeat(1))
        for node_id, node_facts in [
            ("web-1", labelled("web-1", role="web", dc="fra")),
            ("web-2", labelled("web-2", role="web-canary")),
            ("db-1", labelled("db-1", role="db", dc="fra")),
            ("bare", labelled("bare")),
        ]
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def served() -> Iterator[SubscribeServer]:
    """A collector stand-in serving ``fleet()``."""
    srv = SubscribeServer(fleet)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def window(qtbot: QtBot, served: SubscribeServer) -> Iterator[MainWindow]:
    """A window connected to ``served``, all four nodes in the table."""
    win = start_window(qtbot, served.url, 4)
    yield win
    win.close()


class TestLabelFilter:
    @pytest.mark.parametrize(
        ("text", "nodes"),
        [
            ("label:role=web", ["web-1"]),  # exact value: web-canary is not web
            ("label:dc=fra", ["db-1", "web-1"]),
            ("label:dc", ["db-1", "web-1"]),  # has the key
            ("label:role=web label:dc=fra", ["web-1"]),
            ("label:role=WEB", []),  # values are case-sensitive, as in Prometheus
            ("label:rack", []),
        ],
    )
    def test_the_table_shows_only_the_matching_nodes(self, window: MainWindow, text: str, nodes: list[str]) -> None:
        """Typing a label term leaves only the nodes whose agents were started with that label."""
        window.filter_box.setText(text)
        assert not window.filter_error.isVisible()
        assert sorted(visible_nodes(window)) == nodes

    def test_new_labels_in_an_update_refilter_the_table(
        self, qtbot: QtBot, window: MainWindow, served: SubscribeServer
    ) -> None:
        """A node whose agent restarts with role=web joins the label:role=web view without retyping."""
        window.filter_box.setText("label:role=web")
        assert visible_nodes(window) == ["web-1"]
        entry = NodeEntry(status=status("bare"), facts=labelled("bare", role="web"))
        served.push(Update(server_time_at=WALL_T0 + 1, nodes=[entry]))
        qtbot.waitUntil(lambda: sorted(visible_nodes(window)) == ["bare", "web-1"], timeout=5000)
