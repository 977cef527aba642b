"""The viewer's network boundary: ``CollectorLink``, one QObject with typed signals.

Network I/O runs in a background thread with its own asyncio loop and an aiohttp
client, so nothing on the UI thread ever blocks on the network. The thread decodes
every frame (``shared.codec.decode`` with ``COLLECTOR_LIMITS``), merges updates
latest-per-node (``viewer.batching``) and about every 100 ms hands ONE batch to the UI
thread through a queued signal. At most one batch is in flight: while the UI thread
is busy, updates keep merging in the network thread instead of piling up in Qt's
event queue. A big batch reaches ``batch_ready`` in slices (``viewer.batching.split_batch``),
one per event-loop turn, so paints and timers run between them (a 10,000-node fleet sends
~1,500 nodes per batch: ~35 ms in one go); the next batch is asked for after the last slice,
and a state change is emitted only after the slices of the batch before it.

Why this design, and not QtWebSockets on the UI thread: issue #5's prototypes measured
both; decoding here keeps that work (~5 ms per 225-node update) off the UI thread.
bench/viewer_stall.py measures the result end to end.

Not here: the network thread itself (``viewer.worker``), the phases and the words for
failures (``viewer.linkstate``), widgets or models (signals carry plain data).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Final

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal, pyqtSlot

from shared.messages import HistoryRequest, NodeHistory
from viewer.backoff import Backoff
from viewer.batching import NodeBatch, split_batch
from viewer.linkstate import LinkConfig, LinkState, Phase, subscribe_url
from viewer.worker import Bridge, NetworkWorker

__all__ = ["CollectorLink", "LinkConfig", "LinkState", "Phase", "subscribe_url"]

logger = logging.getLogger(__name__)

# Closing the window may wait this long for the network thread, never longer (issue #5).
STOP_TIMEOUT_S: Final = 2.0


class CollectorLink(QObject):
    """Subscribe to a collector and report what it says, as signals emitted on the UI thread.

    ``batch_ready(NodeBatch)``: merged changes to apply; ``state_changed(LinkState)``: for the
    connection indicator; ``history_ready(NodeHistory)``: the reply to ``request_history``;
    ``alerts_ready(AlertNews)``: an alert message (the link subscribes with ``?alerts=1``).
    """

    batch_ready = pyqtSignal(NodeBatch)
    state_changed = pyqtSignal(LinkState)
    history_ready = pyqtSignal(NodeHistory)
    alerts_ready = pyqtSignal(object)  # a viewer.alertwire.AlertNews (alerts or alert message)

    def __init__(self, config: LinkConfig, backoff: Backoff | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config
        self._backoff = backoff if backoff is not None else Backoff()
        self._bridge = Bridge(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._bridge.batch.connect(self._on_batch, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._bridge.state.connect(self._on_state, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._bridge.history.connect(self._on_history, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._bridge.alerts.connect(self.alerts_ready, queued)  # type: ignore[call-arg]  # stubs lack `type`
        self._ui_ready = threading.Event()
        self._ui_ready.set()
        self._slices: deque[NodeBatch] = deque()  # the rest of the batch being applied, one per turn
        self._slice_timer = QTimer(self)
        self._slice_timer.setSingleShot(True)
        self._slice_timer.setInterval(0)  # the next event-loop turn: paints and other timers first
        self._slice_timer.timeout.connect(self._emit_slice)
        self._worker: NetworkWorker | None = None
        self._thread: threading.Thread | None = None
        self._state = LinkState(Phase.CONNECTING, "not started")

    @property
    def state(self) -> LinkState:
        """The last state emitted."""
        return self._state

    def start(self) -> None:
        """Start the network thread; it connects, and reconnects until ``stop()``."""
        if self._thread is not None:
            raise RuntimeError("CollectorLink.start() called twice")
        self._worker = NetworkWorker(self._config, self._backoff, self._bridge, self._ui_ready)
        self._thread = threading.Thread(target=self._worker.run, name="nodewatch-viewer-link", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Ask the network thread to stop and wait at most ``timeout_s``; True if it ended."""
        self._slice_timer.stop()
        self._slices.clear()
        if self._worker is None or self._thread is None:
            return True
        self._worker.request_stop()
        self._thread.join(timeout_s)
        stopped = not self._thread.is_alive()
        if not stopped:
            logger.warning("viewer link: network thread still running after %.1f s; abandoning it", timeout_s)
        return stopped

    def request_history(self, node_id: str) -> None:
        """Ask the collector for ``node_id``'s full history; ``history_ready`` carries the answer."""
        if self._worker is not None:
            self._worker.request_history(node_id)

    def request(self, request: HistoryRequest) -> None:
        """Send ``request`` (e.g. a ranged one, docs/protocol.md 5.9); ``history_ready`` carries the answer."""
        if self._worker is not None:
            self._worker.request_history(request)

    @pyqtSlot(object)
    def _on_batch(self, batch: NodeBatch) -> None:
        if batch.is_snapshot:  # it supersedes whatever is left of the batch before it
            self._slices.clear()
        self._slices.extend(split_batch(batch))  # after the rest of one forced out by a session's end
        self._emit_slice()

    def _emit_slice(self) -> None:
        """Emit the next slice; the next after one event-loop turn, or ask for a new batch after the last."""
        if not self._slices:
            return
        batch = self._slices.popleft()
        try:
            self.batch_ready.emit(batch)
        finally:
            if self._slices:
                self._slice_timer.start()
            else:
                self._ui_ready.set()

    def _drain_slices(self) -> None:
        """Emit every slice left at once: what came before a state change is shown before it."""
        self._slice_timer.stop()
        while self._slices:
            self._emit_slice()
        self._slice_timer.stop()

    @pyqtSlot(object)
    def _on_state(self, state: LinkState) -> None:
        self._drain_slices()
        self._state = state
        self.state_changed.emit(state)

    @pyqtSlot(object)
    def _on_history(self, history: NodeHistory) -> None:
        self.history_ready.emit(history)
