"""With a stored range picked, the viewer asks only for that range: never the live window it would ignore.

A real loopback subscribe endpoint (``SubscribeServer``) records every request that arrives on
the wire; the real window selects nodes, reconnects and goes back to "15 min". Not here: the
ranged answers and their drawing (``test_history_range.py``).
"""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from tests.viewer.helpers import start_window
from tests.viewer.subscribe_server import SubscribeServer
from viewer.link import Phase

WAIT_MS = 5000


def asked(server: SubscribeServer, since: int) -> list[tuple[str, bool]]:
    """The requests that arrived after the first ``since``: (node id, ranged?)."""
    return [(request.node_id, request.ranged) for request in server.requests[since:]]


class TestRangeRequests:
    def test_a_picked_range_stops_the_live_window_requests(self, qtbot: QtBot, server: SubscribeServer) -> None:
        """After "24 h" is picked, selecting and reconnecting send ranged requests only; "15 min" asks live again."""
        win = start_window(qtbot, server.url, 3)
        win.select_node("a")
        qtbot.waitUntil(lambda: asked(server, 0) == [("a", False)], timeout=WAIT_MS)  # the live window: drawn
        picked = len(server.requests)
        win.detail.picker.button("24 h").click()
        qtbot.waitUntil(lambda: asked(server, picked) == [("a", True)], timeout=WAIT_MS)
        for node_id in ("b", "c"):
            win.select_node(node_id)
            wanted = (node_id, True)
            qtbot.waitUntil(lambda: wanted in asked(server, picked), timeout=WAIT_MS)  # noqa: B023 - awaited here
        server.stop()
        qtbot.waitUntil(lambda: win.link.state.phase is not Phase.CONNECTED, timeout=WAIT_MS)
        server.start()
        qtbot.waitUntil(lambda: asked(server, picked).count(("c", True)) == 2, timeout=WAIT_MS)  # asked again
        qtbot.wait(300)  # anything else the window would send after the snapshot
        assert asked(server, picked) == [("a", True), ("b", True), ("c", True), ("c", True)]
        back = len(server.requests)
        win.detail.picker.button("15 min").click()
        qtbot.waitUntil(lambda: asked(server, back) == [("c", False)], timeout=WAIT_MS)
