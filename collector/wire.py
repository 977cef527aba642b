"""How a node record looks on the wire: each pydantic model next to its twin packed from parts.

Each ``*_frame`` function here has a twin that builds the pydantic model
(``status`` / ``status_wire``, ``entry`` / ``entry_frame``, ``snapshot`` /
``snapshot_frame``): the models serve JSON subscribers and the HTTP API, the
frames serve msgpack subscribers, the fan-out's hot path.

msgpack is concatenative: a map is a header and then its keys and values,
each packed on its own. So an ``Update`` or a ``Snapshot`` can be built by
joining bytes: each node's status is packed from a plain dict, its facts are
packed once per change of facts, and its last sample is the heartbeat frame
the agent sent (already validated by ``shared.codec.decode``), forwarded
as is. No pydantic model is built or dumped per node per flush.

The bytes decode (with ``shared.codec.decode``) to exactly the message that
``shared.codec.encode`` would have produced from the twin model; a test in
``tests/collector/test_wire.py`` holds both paths to that.

The ``alerts`` and ``alert`` messages (only for subscribers with ``?alerts=1``,
docs/protocol.md 5.11 and 5.12) are plain maps typed by ``TypedDict``s here, not
members of the version-1 ``Message`` union: a viewer that did not ask never sees them.

Not here: which nodes go into a frame (``collector.fanout``) and the node
state itself (``collector.cache``). JSON text frames go through the models:
``?format=json`` is for debugging, not for scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict, cast

import msgpack

from collector.cache import NodeCache, NodeRecord
from collector.changes import ChangeKind
from shared.codec import encode, encode_json, to_wire_dict
from shared.limits import MAX_NODES_PER_MESSAGE
from shared.messages import History, HistoryRange, NodeEntry, NodeHistory, NodeStatus, Snapshot

_FACTS_BIT = ChangeKind.FACTS.value
_SAMPLE_BIT = ChangeKind.SAMPLE.value
FULL = ChangeKind.FACTS | ChangeKind.SAMPLE


def pack(obj: Any) -> bytes:
    """One msgpack object, packed as ``shared.codec.encode`` packs (str as str, bytes as bin)."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def map_header(size: int) -> bytes:
    """The header of a msgpack map of ``size`` pairs."""
    if size < len(_FIXMAP_HEADERS):
        return _FIXMAP_HEADERS[size]  # a Packer per call cost ~1 us, once per node per flush
    header: bytes = msgpack.Packer().pack_map_header(size)
    return header


def array_header(size: int) -> bytes:
    """The header of a msgpack array of ``size`` items."""
    header: bytes = msgpack.Packer().pack_array_header(size)
    return header


_FIXMAP_HEADERS = tuple(bytes([0x80 | size]) for size in range(16))  # msgpack fixmap: one byte
KEY_STATUS = pack("status")
KEY_FACTS = pack("facts")
KEY_LAST_SAMPLE = pack("last_sample")
KEY_HISTORY = pack("history")
KEY_NODES = pack("nodes")
KEY_REMOVED = pack("removed")
KEY_SERVER_TIME_AT = pack("server_time_at")
TYPE_UPDATE = pack("type") + pack("update")
TYPE_SNAPSHOT = pack("type") + pack("snapshot")


def entry_parts(status: bytes, facts: bytes | None, last_sample: bytes | None, history: bytes | None) -> bytes:
    """One ``NodeEntry`` map from packed parts; None parts are left out, as ``exclude_none`` would."""
    parts = [b"", KEY_STATUS, status]
    if facts is not None:
        parts += (KEY_FACTS, facts)
    if last_sample is not None:
        parts += (KEY_LAST_SAMPLE, last_sample)
    if history is not None:
        parts += (KEY_HISTORY, history)
    parts[0] = map_header(len(parts) // 2)
    return b"".join(parts)


def update_frame(server_time_at: float, entries: Sequence[bytes], removed: Iterable[str]) -> bytes:
    """A whole ``Update`` message from packed ``NodeEntry`` maps."""
    return b"".join(
        (
            map_header(4),
            TYPE_UPDATE,
            KEY_SERVER_TIME_AT,
            pack(server_time_at),
            KEY_NODES,
            array_header(len(entries)),
            *entries,
            KEY_REMOVED,
            pack(list(removed)),
        )
    )


def snapshot_parts(server_time_at: float, entries: Sequence[bytes]) -> bytes:
    """A whole ``Snapshot`` message from packed ``NodeEntry`` maps."""
    head = (map_header(3), TYPE_SNAPSHOT, KEY_SERVER_TIME_AT, pack(server_time_at), KEY_NODES)
    return b"".join((*head, array_header(len(entries)), *entries))


def status(record: NodeRecord) -> NodeStatus:
    """The wire model of a node's liveness: ``status_wire``'s map, validated (the JSON and HTTP paths)."""
    return NodeStatus.model_validate(status_wire(record))


def status_wire(record: NodeRecord) -> dict[str, Any]:
    """``status(record)`` as the map ``encode`` would pack, built without a model: it runs per node per flush."""
    wire_status: dict[str, Any] = {
        "node_id": record.node_id,
        "state": record.state,
        "state_since_at": record.state_since_at,
    }
    if record.reason is not None:
        wire_status["reason"] = record.reason
    if record.last_seen_at is not None:
        wire_status["last_seen_at"] = record.last_seen_at
    wire_status["interval_s"] = record.interval_s
    wire_status["agent_instance_id"] = record.instance_id
    wire_status["connected"] = record.conn is not None
    wire_status["last_seq"] = record.last_seq
    skew = record.clock_skew_s
    if skew is not None:
        wire_status["clock_skew_s"] = skew
    wire_status["dropped_samples"] = record.dropped_samples
    wire_status["missing_samples"] = record.missing_samples
    return wire_status


def entry(record: NodeRecord, kind: ChangeKind, history: History | None = None) -> NodeEntry:
    """A NodeEntry with status, plus facts and last sample when ``kind`` asks for them."""
    return NodeEntry(
        status=status(record),
        facts=record.facts if kind & ChangeKind.FACTS else None,
        last_sample=record.last_sample if kind & ChangeKind.SAMPLE else None,
        history=history,
    )


def facts_frame(record: NodeRecord) -> bytes:
    """The node's facts packed, built on first use after each change of facts (the cache clears it)."""
    if record.facts_frame is None:
        record.facts_frame = pack(record.facts.model_dump(mode="python", exclude_none=True))
    return record.facts_frame


def sample_frame(record: NodeRecord) -> bytes | None:
    """The node's last sample packed: the agent's own frame, or one packed once from a heartbeat without it."""
    if record.last_sample_frame is None and record.last_sample_model is not None:
        record.last_sample_frame = pack(to_wire_dict(record.last_sample_model))
        record.last_sample_model = None
    return record.last_sample_frame


def entry_frame(record: NodeRecord, kind: ChangeKind, history: bytes | None = None) -> bytes:
    """``entry(record, kind)`` packed as msgpack, from cached parts."""
    bits = kind.value  # plain int tests: IntFlag's & costs ~0.5 us each, and this runs per node per flush
    facts = facts_frame(record) if bits & _FACTS_BIT else None
    sample = sample_frame(record) if bits & _SAMPLE_BIT else None
    return entry_parts(pack(status_wire(record)), facts, sample, history)


def json_text(frame: bytes) -> str:
    """A packed collector message as the JSON text ``encode_json`` gives for it (same map; compact).

    The fan-out packs each update once and gives ``?format=json`` subscribers this text of the
    same bytes, so both formats carry exactly one state (``collector.fanout``).
    """
    return json.dumps(msgpack.unpackb(frame), separators=(",", ":"), allow_nan=False)


def snapshot(cache: NodeCache, wall: float, history_points: int) -> Snapshot:
    """Every node with status, facts, last sample and its newest ``history_points`` points."""
    return Snapshot(
        server_time_at=wall,
        nodes=[entry(n, FULL, n.history.to_history(history_points)) for n in cache.nodes()],
    )


def snapshot_frame(cache: NodeCache, wall: float, history_points: int) -> bytes:
    """``snapshot(cache, wall, history_points)`` packed as msgpack, without building a model per node."""
    return snapshot_parts(wall, [entry_frame(n, FULL, pack(n.history.to_wire(history_points))) for n in cache.nodes()])


# ---- ranged history (docs/protocol.md 5.10) -------------------------------------------------------------

# A ranged answer's ``history`` is empty: its points are in ``range``; the key stays for version 1's schema.
EMPTY_HISTORY = History(
    seq=[], sampled_at=[], cpu_percent=[], mem_percent=[], load_1=[], net_rx_bytes_per_s=[], net_tx_bytes_per_s=[],
    disk_read_bytes_per_s=[], disk_write_bytes_per_s=[],
)  # fmt: skip


def range_history(node_id: str, answer: Mapping[str, Any]) -> NodeHistory:
    """The ``history`` message carrying ``answer`` (``collector.history_query.range_map``) as its ``range``."""
    return NodeHistory(node_id=node_id, history=EMPTY_HISTORY, range=HistoryRange.model_validate(answer))


def range_history_frame(node_id: str, answer: Mapping[str, Any], json_format: bool) -> bytes | str:
    """``range_history`` as one frame; up to ~2,000 points a series, so callers run it in a worker thread."""
    message = range_history(node_id, answer)
    return encode_json(message) if json_format else encode(message)


# ---- alert messages (docs/protocol.md 5.11 and 5.12; only for subscribers with ?alerts=1) ----------------


class AlertEntryMap(TypedDict, total=False):
    """One live alert, as ``AlertInstance.view()`` builds it (None values left out, as ``encode`` does)."""

    alertname: str
    node_id: str
    instance: str
    severity: str
    state: str
    active_since_at: float
    fired_at: float
    value: float
    condition: str
    summary: str


class AlertEventMap(TypedDict, total=False):
    """One alert transition, as ``AlertTransition.to_dict()`` builds it."""

    alertname: str
    node_id: str
    instance: str
    severity: str
    old: str
    new: str
    changed_at: float
    active_since_at: float
    value: float
    labels: dict[str, str]
    summary: str


class AlertsMessageMap(TypedDict):
    """``alerts``: every live alert, sent once after the snapshot (in parts past MAX_ALERTS_PER_MESSAGE)."""

    type: Literal["alerts"]
    server_time_at: float
    alerts: list[AlertEntryMap]


class AlertUpdateMap(TypedDict):
    """``alert``: transitions since the last one, flushed with the updates."""

    type: Literal["alert"]
    server_time_at: float
    events: list[AlertEventMap]


# As many items as an update may carry nodes: the viewer's receive limits already fit such a frame.
MAX_ALERTS_PER_MESSAGE = MAX_NODES_PER_MESSAGE


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if value is not None}


def _frame(message: AlertsMessageMap | AlertUpdateMap, json_format: bool) -> bytes | str:
    return json.dumps(message, separators=(",", ":")) if json_format else pack(message)


def alerts_frames(server_time_at: float, alerts: Sequence[Mapping[str, Any]], json_format: bool) -> list[bytes | str]:
    """The ``alerts`` message(s) for a new subscriber: one, or one per MAX_ALERTS_PER_MESSAGE alerts."""
    frames: list[bytes | str] = []
    for start in range(0, max(1, len(alerts)), MAX_ALERTS_PER_MESSAGE):
        part = [cast(AlertEntryMap, _present(a)) for a in alerts[start : start + MAX_ALERTS_PER_MESSAGE]]
        frames.append(_frame({"type": "alerts", "server_time_at": server_time_at, "alerts": part}, json_format))
    return frames


def alert_update_frame(server_time_at: float, events: Sequence[Mapping[str, Any]], json_format: bool) -> bytes | str:
    """One ``alert`` message with ``events`` (at most MAX_ALERTS_PER_MESSAGE of them)."""
    rows = [cast(AlertEventMap, _present(e)) for e in events]
    return _frame({"type": "alert", "server_time_at": server_time_at, "events": rows}, json_format)
