"""A snapshot in several parts (docs/protocol.md 4.2.1) reaches the table as one fleet: no row vanishes meanwhile.

A real collector app (two nodes a part, so seven nodes are a snapshot and three parts) on
loopback, real websocket agents, and the real window, whose connection a relay cuts to make it
reconnect. Not here: the merging itself (``test_batching.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from tests.support.swarm import AgentSwarm
from tests.viewer.helpers import make_link
from tests.viewer.parts_collector import PartsCollector
from viewer.batching import NodeBatch
from viewer.window import MainWindow

WAIT_MS = 10_000
FLEET = tuple(f"node-{index}" for index in range(7))


@pytest.fixture
def collector() -> Iterator[PartsCollector]:
    """A collector that sends two nodes a snapshot part, holding the seven online nodes of ``FLEET``."""
    parts = PartsCollector(part_nodes=2)
    parts.start()
    swarm = AgentSwarm(parts.collector_url)
    try:
        for node_id in FLEET:
            swarm.connect(node_id)
            swarm.beat(node_id)
        yield parts
    finally:
        swarm.close_all()
        parts.close()


class TestSnapshotParts:
    def test_a_reconnect_never_shows_fewer_rows_than_the_fleet(self, qtbot: QtBot, collector: PartsCollector) -> None:
        """After connecting and after a reconnect, every batch the table shows holds the whole fleet, in one go."""
        win = MainWindow(make_link(collector.url), collector_url=collector.url)
        qtbot.addWidget(win)
        shown: list[tuple[bool, int]] = []  # (a snapshot batch?, rows after it), connected after the window's slot

        def record(batch: NodeBatch) -> None:
            shown.append((batch.is_snapshot, win.model.rowCount()))

        win.link.batch_ready.connect(record)
        win.show()
        win.link.start()
        qtbot.waitUntil(lambda: win.model.rowCount() == len(FLEET) and win.model.connected, timeout=WAIT_MS)
        qtbot.wait(300)  # later updates too
        assert shown[0] == (True, len(FLEET))  # the first thing drawn is the whole fleet, not its first part
        before = len(shown)
        collector.cut()
        qtbot.waitUntil(lambda: not win.model.connected, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: win.model.connected and any(s for s, _ in shown[before:]), timeout=WAIT_MS)
        qtbot.wait(300)  # the parts, the catch-up and the alerts message have all come
        assert [rows for _snapshot, rows in shown[before:]] == [len(FLEET)] * len(shown[before:])
        assert sorted(win.model.node_ids()) == sorted(FLEET)
        win.close()
