"""The viewer never makes old figures look live, or a broken connection look like an empty fleet (issue 16)."""

from __future__ import annotations

import errno
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.client_reqrep import ConnectionKey
from PyQt6.QtCore import Qt
from pytestqt.qtbot import QtBot

from shared.messages import History, NodeEntry, Snapshot
from tests.support.messages import WALL_T0, entry, facts, heartbeat, history, status, update
from tests.viewer.helpers import batch_of, make_link, visible_nodes
from tests.viewer.subscribe_server import PlainWebServer, SubscribeServer
from viewer.cells import Column
from viewer.linkstate import connect_failure
from viewer.model import NodeTableModel
from viewer.sorting import NodeSortFilterModel
from viewer.window import MainWindow

DNS_KEY = ConnectionKey("collector.example", 8765, False, True, None, None, None, None)


OPENSSL_ARGS = (
    *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
    *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
)


def open_window(qtbot: QtBot, url: str, token: str | None = None) -> MainWindow:
    """A shown window following ``url``."""
    win = MainWindow(make_link(url, token=token), collector_url=url)
    qtbot.addWidget(win)
    win.show()
    win.link.start()
    return win


@pytest.fixture
def window(qtbot: QtBot, server: SubscribeServer) -> Iterator[MainWindow]:
    """A window connected to ``server`` (nodes a, b, c)."""
    win = open_window(qtbot, server.url)
    qtbot.waitUntil(lambda: win.model.rowCount() == 3 and win.model.connected, timeout=5000)
    yield win
    win.close()


def cell(win: MainWindow, node_id: str, column: Column, role: int = Qt.ItemDataRole.DisplayRole) -> object:
    """What the table shows for ``node_id`` in ``column``."""
    return win.proxy.index(visible_nodes(win).index(node_id), column).data(role)


class TestDeadNodesLookDead:
    def test_offline_metrics_show_a_dash_with_the_last_value_in_the_tooltip(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """An offline node's CPU reads '—', dimmed, and its tooltip gives the last value and when it was seen."""
        server.push(update(NodeEntry(status=status("b", "offline", reason="agent_closed"))))
        qtbot.waitUntil(lambda: cell(window, "b", Column.STATE) == "offline", timeout=5000)
        assert cell(window, "b", Column.CPU) == "—"
        assert cell(window, "b", Column.CPU, Qt.ItemDataRole.ForegroundRole) is not None
        tip = str(cell(window, "b", Column.CPU, Qt.ItemDataRole.ToolTipRole))
        assert "last value 12.5 %" in tip
        assert cell(window, "a", Column.CPU, Qt.ItemDataRole.ForegroundRole) is None  # live rows at full contrast

    def test_stale_metrics_are_dimmed(self, qtbot: QtBot, server: SubscribeServer, window: MainWindow) -> None:
        """A stale node keeps its figure but dimmed, so it does not read as live."""
        server.push(update(NodeEntry(status=status("c", "stale", reason="no_heartbeat"))))
        qtbot.waitUntil(lambda: cell(window, "c", Column.STATE) == "stale", timeout=5000)
        assert cell(window, "c", Column.CPU) == "12.5 %"
        assert cell(window, "c", Column.CPU, Qt.ItemDataRole.ForegroundRole) is not None

    def test_dead_nodes_never_top_a_cpu_sort(self) -> None:
        """Sorted by CPU, busiest first, an offline node's old 98.6 % sorts after every live node."""
        model = NodeTableModel()
        dead = NodeEntry(status=status("dead", "offline"), last_sample=heartbeat(cpu=98.6))
        model.apply_batch(batch_of(update(entry("idle", cpu=1.0), dead, entry("busy", cpu=50.0))), WALL_T0)
        view = NodeSortFilterModel(model)
        view.sort(Column.CPU, Qt.SortOrder.DescendingOrder)
        assert view.node_ids() == ["busy", "idle", "dead"]
        view.sort(Column.CPU, Qt.SortOrder.AscendingOrder)
        assert view.node_ids() == ["idle", "busy", "dead"]


class TestChartsBreakAtGaps:
    def test_history_with_missing_seqs_breaks_the_curve(self, qtbot: QtBot, window: MainWindow) -> None:
        """A history with seq 3 followed by seq 8 draws no line across the gap, and the gap is shaded."""
        full = history(points=6)
        gappy = History(
            **{name: list(values) for name, values in full.model_dump().items() if name != "seq"},
            seq=[1, 2, 3, 8, 9, 10],
        )
        window.select_node("a")
        window.detail.set_history("a", gappy)
        y = window.detail.cpu_chart.plot.getPlotItem().listDataItems()[0].yData
        assert int(np.isnan(y).sum()) == 1
        assert np.isnan(y[3])  # between the 3rd and the 4th sample
        assert window.detail.cpu_chart.shaded_spans() == [(full.sampled_at[2], full.sampled_at[3])]

    def test_a_live_sample_after_a_time_gap_breaks_the_curve(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """A sample 30 intervals after the last one starts a new line instead of a diagonal ramp."""
        window.select_node("a")
        qtbot.waitUntil(lambda: window.detail.chart_points() == 30, timeout=5000)
        late = heartbeat(seq=31, sampled_at=WALL_T0 + 30, cpu=90.0)
        server.push(update(NodeEntry(status=status("a", seq=31), last_sample=late)))
        qtbot.waitUntil(lambda: window.detail.chart_points() == 32, timeout=5000)
        y = window.detail.cpu_chart.plot.getPlotItem().listDataItems()[0].yData
        assert np.isnan(y[-2])
        assert y[-1] == 90.0


class TestDisconnectedIsSaid:
    def test_connection_refused_is_said_in_the_banner(self, qtbot: QtBot) -> None:
        """A closed port shows 'connection refused' across the table, not 'connecting...' next to '0 nodes'."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        win = open_window(qtbot, f"http://127.0.0.1:{port}")
        try:
            qtbot.waitUntil(lambda: "connection refused" in win.banner.text(), timeout=5000)
            assert win.banner.isVisible()
        finally:
            win.close()

    def test_a_web_server_that_is_not_a_collector_is_called_so(self, qtbot: QtBot) -> None:
        """HTTP 404 on /api/v1/subscribe reads 'not a nodewatch collector'."""
        with PlainWebServer() as url:
            win = open_window(qtbot, url)
            try:
                qtbot.waitUntil(lambda: "not a nodewatch collector" in win.banner.text(), timeout=5000)
                assert "HTTP 404" in win.banner.text()
            finally:
                win.close()

    def test_auth_failure_is_said_in_the_banner(self, qtbot: QtBot) -> None:
        """A collector that wants a token: the banner says auth failed and what to pass."""
        guarded = SubscribeServer(lambda: Snapshot(server_time_at=WALL_T0, nodes=[]), token="secret")
        guarded.start()
        win = open_window(qtbot, guarded.url)
        try:
            qtbot.waitUntil(lambda: "auth failed" in win.banner.text(), timeout=5000)
            assert "--token" in win.banner.text()
        finally:
            win.close()
            guarded.close()

    def test_an_untrusted_tls_certificate_is_said_in_the_banner(self, qtbot: QtBot, tmp_path: Path) -> None:
        """A collector with a self-signed certificate: 'TLS certificate not trusted', not a bare retry."""
        if shutil.which("openssl") is None:
            pytest.skip("openssl CLI not installed; needed to make a self-signed test certificate")
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run([*OPENSSL_ARGS, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        secure = SubscribeServer(lambda: Snapshot(server_time_at=WALL_T0, nodes=[]), tls=context)
        secure.start()
        win = open_window(qtbot, secure.url)
        try:
            qtbot.waitUntil(lambda: "TLS certificate not trusted" in win.banner.text(), timeout=5000)
        finally:
            win.close()
            secure.close()

    @pytest.mark.parametrize(
        ("exc", "words"),
        [
            (aiohttp.ClientConnectorDNSError(DNS_KEY, OSError(-2, "Name or service not known")), "name not resolved"),
            (ssl.SSLCertVerificationError(1, "certificate verify failed"), "TLS certificate not trusted"),
            (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused"),
            (TimeoutError(), "no answer"),
        ],
    )
    def test_each_failure_has_its_words(self, exc: BaseException, words: str) -> None:
        """Every way a connection fails is named in words a person can act on."""
        assert words in connect_failure(exc, "collector.example").words

    def test_counts_and_pane_say_as_of_while_disconnected(
        self, qtbot: QtBot, server: SubscribeServer, window: MainWindow
    ) -> None:
        """With the collector gone, the counts and the pane's state say 'as of HH:MM:SS', and the banner shows."""
        window.select_node("a")
        server.stop()
        qtbot.waitUntil(lambda: window.counts_label.text().startswith("as of "), timeout=5000)
        assert "as of " in window.detail.fact("State").text()
        assert "selection-background-color" in window.table.styleSheet()  # the selected row greys too
        assert window.banner.isVisible()
        assert "as of" in window.banner.text()
        server.start()
        qtbot.waitUntil(lambda: window.model.connected, timeout=5000)
        assert not window.counts_label.text().startswith("as of ")
        assert not window.banner.isVisible()


class TestPaneInWords:
    def test_state_is_in_words_with_since_and_last_seen(self, qtbot: QtBot, window: MainWindow) -> None:
        """The pane says 'online since HH:MM:SS (...): the agent connected' and when the node was last seen."""
        window.select_node("a")
        state = window.detail.fact("State").text()
        assert state.startswith("online since ")
        assert "(hello)" not in state
        assert window.detail.fact("Last seen").text()

    def test_reason_words(self, qtbot: QtBot, server: SubscribeServer, window: MainWindow) -> None:
        """'offline (agent_closed)' reads 'offline since ...: the agent closed its connection'."""
        window.select_node("b")
        server.push(update(NodeEntry(status=status("b", "offline", reason="agent_closed"), facts=facts("b"))))
        qtbot.waitUntil(lambda: "offline since" in window.detail.fact("State").text(), timeout=5000)
        assert window.detail.fact("State").text().endswith("the agent closed its connection")
