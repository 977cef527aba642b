"""One node's record in the collector's cache, its liveness thresholds and its status reasons.

``NodeRecord`` is what ``NodeCache`` keeps per node: facts, instance, the
latest sample (as the validated frame it arrived in), history ring, liveness
state and clock-skew readings. ``due`` says when the node's next liveness
transition falls, by the thresholds below.

Not here: the state machine that changes records (``collector.cache``), and
rendering them for the wire (``collector.wire``). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from collector.changes import STATUS_AND_SAMPLE, Change, ChangeKind
from collector.history import HistoryRing
from shared.codec import INGEST_LIMITS, decode
from shared.messages import Heartbeat, NodeFacts, NodeState

# docs/protocol.md: stale after 3 missed intervals, offline after 10.
STALE_AFTER_INTERVALS = 3
OFFLINE_AFTER_INTERVALS = 10
# Clock skew is the max of (agent time - collector time) over this many recent
# readings: network delay and replayed samples only make a reading smaller,
# so the max is the best estimate (the same idea as NTP's minimum-delay filter).
SKEW_WINDOW = 8
STATES: tuple[NodeState, ...] = ("online", "stale", "offline")

# Reasons shown in NodeStatus.reason.
REASON_HELLO = "hello"
REASON_HEARTBEAT = "heartbeat_resumed"
REASON_NO_HEARTBEAT = "no_heartbeat"
REASON_AGENT_CLOSED = "agent_closed"


def stored_sample(frame: bytes | None, model: Heartbeat | None) -> Heartbeat | None:
    """The sample a node record keeps as ``frame`` (validated on arrival) or, lacking one, as ``model``.

    Pure: safe to call off the event loop on values read from a record.
    """
    if model is not None:
        return model
    if frame is None:
        return None
    sample = decode(frame, INGEST_LIMITS)
    if not isinstance(sample, Heartbeat):  # pragma: no cover - only validated heartbeat frames are kept
        raise TypeError(f"expected a heartbeat frame, got {sample.type!r}")
    return sample


@dataclass(slots=True)
class NodeRecord:
    """Everything the collector knows about one node."""

    node_id: str
    facts: NodeFacts
    instance_id: str
    interval_s: float
    history: HistoryRing
    state: NodeState
    state_since_at: float
    reason: str | None
    last_heard: float  # monotonic time of the last hello or heartbeat
    last_seen_at: float | None = None
    last_seq: int = 0
    dropped_samples: int = 0
    missing_samples: int = 0
    duplicates: int = 0
    # The latest sample is kept as the validated frame it arrived in (bytes: the garbage collector never
    # scans them), forwarded as is to subscribers, and decoded again only when asked (``last_sample``).
    # Keeping each node's Heartbeat model instead kept ~8 GC-tracked objects per node alive for about a
    # second, long enough to be promoted: collections of 100-290 ms at 10,000 nodes (bench/e2e.py).
    last_sample_frame: bytes | None = None
    last_sample_model: Heartbeat | None = None  # only for a heartbeat applied without its frame
    last_sample_at: float | None = None
    facts_frame: bytes | None = None  # ``facts`` packed, built on first use after each change of facts
    conn: int | None = None  # the shell's id of the connection that holds this node
    offline_since: float | None = None  # monotonic
    heap_due: float | None = None  # the due time of this node's one live heap entry
    skews_s: deque[float] = field(default_factory=lambda: deque(maxlen=SKEW_WINDOW))  # oldest first
    _skew_max_s: float | None = field(default=None, init=False, repr=False)  # max(skews_s), kept as they change
    # The node's two heartbeat changes, built once: Change is immutable, and one per heartbeat cost ~1 us.
    status_change: Change = field(init=False, repr=False, compare=False)
    sample_change: Change = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.status_change = Change(self.node_id, ChangeKind.STATUS)
        self.sample_change = Change(self.node_id, STATUS_AND_SAMPLE)

    def restart_skew(self, reading_s: float) -> None:
        """A hello: the clock-skew readings start over from this one."""
        self.skews_s.clear()
        self.skews_s.append(reading_s)
        self._skew_max_s = reading_s

    def add_skew(self, reading_s: float) -> None:
        """One more clock-skew reading; the oldest leaves a full window. The max is kept, not recounted per read."""
        skews = self.skews_s
        evicted = skews[0] if len(skews) == skews.maxlen else None
        skews.append(reading_s)
        top = self._skew_max_s
        if top is None or reading_s >= top:
            self._skew_max_s = reading_s
        elif evicted == top:  # the max left the window: the next one is among those left
            self._skew_max_s = max(skews)

    def due(self, forget_after_s: float) -> float:
        """The monotonic time of this node's next liveness transition."""
        if self.state == "online":
            return self.last_heard + STALE_AFTER_INTERVALS * self.interval_s
        if self.state == "stale":
            return self.last_heard + OFFLINE_AFTER_INTERVALS * self.interval_s
        since = self.last_heard if self.offline_since is None else self.offline_since
        return since + forget_after_s

    @property
    def clock_skew_s(self) -> float | None:
        """Agent wall clock minus ours: the max of the recent readings (see SKEW_WINDOW), None before one."""
        return self._skew_max_s

    @property
    def last_sample(self) -> Heartbeat | None:
        """The newest sample by seq of the current instance, or None before the first heartbeat."""
        return stored_sample(self.last_sample_frame, self.last_sample_model)
