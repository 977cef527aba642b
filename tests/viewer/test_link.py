"""Tests of viewer.link against a real loopback subscribe server: connect, batch, reconnect, 401, stop."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator

import msgpack
import pytest
from PyQt6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from shared.messages import NodeHistory
from tests.support.messages import entry, snapshot, update
from tests.viewer.helpers import link_threads, make_link
from tests.viewer.subscribe_server import SubscribeServer
from viewer.batching import APPLY_SLICE_NODES, NodeBatch
from viewer.link import CollectorLink, LinkState, Phase, subscribe_url


class Recorder:
    """Everything a link emitted, in order, and the thread each signal arrived on."""

    def __init__(self, link: CollectorLink) -> None:
        self.batches: list[NodeBatch] = []
        self.states: list[LinkState] = []
        self.histories: list[NodeHistory] = []
        self.threads: set[str] = set()
        link.batch_ready.connect(self._on_batch)
        link.state_changed.connect(self._on_state)
        link.history_ready.connect(self.histories.append)

    def _on_batch(self, batch: NodeBatch) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(batch)

    def _on_state(self, state: LinkState) -> None:
        self.threads.add(threading.current_thread().name)
        self.states.append(state)

    @property
    def phases(self) -> list[Phase]:
        return [state.phase for state in self.states]


@pytest.fixture
def started(server: SubscribeServer) -> Iterator[tuple[CollectorLink, Recorder]]:
    """A started link to ``server``, stopped at the end."""
    link = make_link(server.url)
    recorder = Recorder(link)
    link.start()
    yield link, recorder
    assert link.stop()


class TestSubscribeUrl:
    @pytest.mark.parametrize(
        ("collector", "expected"),
        [
            ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/api/v1/subscribe"),
            ("https://mon.example:443/", "wss://mon.example:443/api/v1/subscribe"),
            ("ws://[::1]:8765", "ws://[::1]:8765/api/v1/subscribe"),
        ],
    )
    def test_derives_websocket_url(self, collector: str, expected: str) -> None:
        """http(s) becomes ws(s) and the subscribe path is appended."""
        assert subscribe_url(collector) == expected

    @pytest.mark.parametrize(
        ("collector", "message"),
        [
            ("127.0.0.1:8765", "expected an http:// or https:// URL"),
            ("ftp://host:1", "expected an http:// or https:// URL"),
            ("http://:8765", "expected a host"),
            ("http://host:99999", "expected a port number"),
            ("http://host:8765/api/v1/subscribe", "expected only scheme://host:port"),
        ],
    )
    def test_rejects_bad_urls(self, collector: str, message: str) -> None:
        """A bad --collector is named with what is accepted."""
        with pytest.raises(ValueError, match=message):
            subscribe_url(collector)


class TestCollectorLink:
    def test_snapshot_arrives_as_a_batch_on_the_ui_thread(
        self, qtbot: QtBot, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """After connecting, the snapshot arrives as one batch and the state says connected, on the UI thread."""
        _link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        assert recorder.phases[0] is Phase.CONNECTING
        assert recorder.batches[0].is_snapshot
        assert sorted(recorder.batches[0].entries) == ["a", "b", "c"]
        assert recorder.threads == {threading.main_thread().name}

    def test_bursts_are_merged(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """Fifty updates sent at once reach the UI as a few batches with the latest state per node."""
        _link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        for seq in range(2, 52):
            server.push(update(entry("a", seq=seq, cpu=float(seq), full=False)))
        qtbot.waitUntil(
            lambda: any(b.entries.get("a", None) and b.entries["a"].status.last_seq == 51 for b in recorder.batches),
            timeout=5000,
        )
        updates = [batch for batch in recorder.batches if not batch.is_snapshot]
        assert sum(batch.messages for batch in updates) == 50
        assert len(updates) < 50

    def test_a_big_batch_arrives_in_slices_with_event_loop_turns_between(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """An update of 2.5 slices' nodes reaches the UI in slices, each node once, and timers run between slices."""
        link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        ticks = [0]
        ticks_at_slice: list[int] = []
        ticker = QTimer()
        ticker.setInterval(0)
        ticker.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))

        def on_slice(batch: NodeBatch) -> None:
            if not batch.is_snapshot:
                ticks_at_slice.append(ticks[0])

        def updates() -> list[NodeBatch]:
            return [batch for batch in recorder.batches if not batch.is_snapshot]

        link.batch_ready.connect(on_slice)
        ticker.start()
        nodes = 2 * APPLY_SLICE_NODES + APPLY_SLICE_NODES // 2
        server.push(update(*(entry(f"n-{index}", seq=2, full=False) for index in range(nodes))))
        qtbot.waitUntil(lambda: sum(len(batch.entries) for batch in updates()) == nodes, timeout=5000)
        ticker.stop()
        sizes = [len(batch.entries) for batch in updates()]
        assert sizes == [APPLY_SLICE_NODES, APPLY_SLICE_NODES, APPLY_SLICE_NODES // 2]
        assert sorted(node for batch in updates() for node in batch.entries) == sorted(f"n-{i}" for i in range(nodes))
        assert all(later > earlier for earlier, later in itertools.pairwise(ticks_at_slice))

    def test_a_state_change_comes_after_the_slices_before_it(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """A big update followed by the collector going away shows every node first, then 'reconnecting'."""
        link, _recorder = started
        events: list[str] = []
        link.batch_ready.connect(lambda batch: events.append("snapshot" if batch.is_snapshot else "slice"))
        link.state_changed.connect(lambda state: events.append(state.phase.name))
        qtbot.waitUntil(lambda: "CONNECTED" in events, timeout=5000)
        nodes = 3 * APPLY_SLICE_NODES
        server.push(update(*(entry(f"n-{index}", seq=2, full=False) for index in range(nodes))))
        server.stop()
        qtbot.waitUntil(lambda: "RECONNECTING" in events, timeout=5000)
        after_connected = events[events.index("CONNECTED") + 1 :]
        assert after_connected[: after_connected.index("RECONNECTING")].count("slice") == 3

    def test_history_request_is_answered(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """request_history sends a HistoryRequest and the NodeHistory reply comes back as a signal."""
        link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        link.request_history("b")
        qtbot.waitUntil(lambda: len(recorder.histories) == 1, timeout=5000)
        assert recorder.histories[0].node_id == "b"
        assert len(recorder.histories[0].history.seq) == 30
        assert server.history_requests == ["b"]

    def test_reconnects_after_the_collector_restarts(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """A collector restart shows 'reconnecting' with a countdown, then a fresh snapshot and 'connected'."""
        _link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        server.stop()
        qtbot.waitUntil(lambda: recorder.phases[-1] is Phase.RECONNECTING, timeout=5000)
        assert any(s.retry_at is not None for s in recorder.states if s.phase is Phase.RECONNECTING)
        server.snapshot = lambda: snapshot("a", "d")
        server.start()
        qtbot.waitUntil(lambda: recorder.phases[-1] is Phase.CONNECTED, timeout=5000)
        assert sorted(recorder.batches[-1].entries) == ["a", "d"]
        assert recorder.batches[-1].is_snapshot

    def test_waits_for_a_collector_that_is_not_up_yet(self, qtbot: QtBot) -> None:
        """With no collector listening the link says 'connecting' and keeps trying until one appears."""
        late = SubscribeServer(lambda: snapshot("late"))
        late.start()
        late.stop()  # now we know a free port nobody listens on
        link = make_link(late.url)
        recorder = Recorder(link)
        link.start()
        try:
            qtbot.waitUntil(lambda: any(s.retry_at is not None for s in recorder.states), timeout=5000)
            assert Phase.CONNECTED not in recorder.phases
            assert set(recorder.phases) == {Phase.CONNECTING}
            late.start()
            qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        finally:
            assert link.stop()
            late.close()

    @pytest.mark.parametrize(
        ("token", "says"),
        [(None, "requires a viewer token"), ("wrong", "rejected the viewer token")],
    )
    def test_401_is_auth_failed_without_a_retry_storm(self, qtbot: QtBot, token: str | None, says: str) -> None:
        """A 401 shows 'auth failed' with the reason and is not retried for a long while."""
        guarded = SubscribeServer(lambda: snapshot("a"), token="s3cret")
        guarded.start()
        link = make_link(guarded.url, token=token)
        recorder = Recorder(link)
        link.start()
        try:
            qtbot.waitUntil(lambda: Phase.AUTH_FAILED in recorder.phases, timeout=5000)
            qtbot.wait(1000)  # fast backoff would have retried ~10 times by now
            assert guarded.attempts == 1
            failed = recorder.states[-1]
            assert failed.phase is Phase.AUTH_FAILED
            assert says in failed.detail
            assert failed.retry_at is not None
            assert failed.retry_at - time.monotonic() > 20
        finally:
            assert link.stop()
            guarded.close()

    def test_right_token_connects(self, qtbot: QtBot) -> None:
        """With the right token the link sends it as a bearer header and connects."""
        guarded = SubscribeServer(lambda: snapshot("a"), token="s3cret")
        guarded.start()
        link = make_link(guarded.url, token="s3cret")
        recorder = Recorder(link)
        link.start()
        try:
            qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        finally:
            assert link.stop()
            guarded.close()

    @pytest.mark.parametrize(
        ("payload", "reason", "close_code"),
        [
            (b"\xc1", "malformed_msgpack", 1008),
            (msgpack.packb({"type": "hello"}), "unsupported_version", 1008),
            (msgpack.packb({"type": "update", "server_time_at": -1.0}), "schema", 1008),
            (msgpack.packb({"type": "nope"}), "unknown_type", 1008),
            (msgpack.packb([1, 2]), "not_a_message", 1008),
        ],
    )
    def test_bad_frame_is_logged_closed_and_reconnected(  # noqa: PLR0917 - pytest passes fixtures positionally
        self,
        qtbot: QtBot,
        caplog: pytest.LogCaptureFixture,
        server: SubscribeServer,
        started: tuple[CollectorLink, Recorder],
        payload: bytes,
        reason: str,
        close_code: int,
    ) -> None:
        """A bad frame: one log line with the reason, a specific close code, no update, then a reconnect."""
        _link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        batches_before = len(recorder.batches)
        with caplog.at_level(logging.WARNING, logger="viewer.link"):
            server.push_raw(payload)
            qtbot.waitUntil(lambda: recorder.phases.count(Phase.CONNECTED) == 2, timeout=5000)
        assert server.client_close_codes[0] == close_code
        assert [r for r in caplog.records if reason in r.getMessage()]
        # the only batch since is the fresh snapshot after reconnecting
        assert [b.is_snapshot for b in recorder.batches[batches_before:]] == [True]

    def test_unexpected_message_type_is_refused(
        self, qtbot: QtBot, server: SubscribeServer, started: tuple[CollectorLink, Recorder]
    ) -> None:
        """A valid message the collector must never send (an ack) closes with 1008 unexpected_message."""
        _link, recorder = started
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        server.push_raw(msgpack.packb({"type": "ack", "seq": 1}))
        qtbot.waitUntil(lambda: recorder.phases.count(Phase.CONNECTED) == 2, timeout=5000)
        assert server.client_close_codes[0] == 1008

    def test_stop_ends_the_thread_quickly(self, qtbot: QtBot, server: SubscribeServer) -> None:
        """stop() ends the network thread well within 2 s and emits 'stopped'; no link thread remains."""
        before = set(threading.enumerate())
        link = make_link(server.url)
        recorder = Recorder(link)
        link.start()
        qtbot.waitUntil(lambda: Phase.CONNECTED in recorder.phases, timeout=5000)
        assert link_threads()
        started_s = time.monotonic()
        assert link.stop()
        assert time.monotonic() - started_s < 2.0
        assert not link_threads()
        assert set(threading.enumerate()) <= before
        qtbot.waitUntil(lambda: recorder.phases[-1] is Phase.STOPPED, timeout=2000)

    def test_stop_before_start_and_twice(self) -> None:
        """stop() is safe before start() and when repeated; start() twice is a bug."""
        link = make_link("http://127.0.0.1:9")
        assert link.stop()
        link.start()
        assert link.stop()
        assert link.stop()
        with pytest.raises(RuntimeError, match="twice"):
            link.start()
