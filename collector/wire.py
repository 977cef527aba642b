"""Collector-to-viewer frames packed straight from pre-packed parts: the fan-out's hot path.

msgpack is concatenative: a map is a header and then its keys and values,
each packed on its own. So an ``Update`` or a ``Snapshot`` can be built by
joining bytes: each node's status is packed from a plain dict, its facts are
packed once per change of facts, and its last sample is the heartbeat frame
the agent sent (already validated by ``shared.codec.decode``), forwarded
as is. No pydantic model is built or dumped per node per flush.

The bytes decode (with ``shared.codec.decode``) to exactly the message that
``shared.codec.encode`` would have produced from the equivalent models; a
test in ``tests/collector/test_wire.py`` holds both paths to that.

Not here: which nodes go into a frame (``collector.fanout``), the node state
itself (``collector.cache``), JSON text frames (those still go through the
pydantic models: ``?format=json`` is for debugging, not for scale).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack


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


def entry_frame(status: bytes, facts: bytes | None, last_sample: bytes | None, history: bytes | None) -> bytes:
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


def snapshot_frame(server_time_at: float, entries: Sequence[bytes]) -> bytes:
    """A whole ``Snapshot`` message from packed ``NodeEntry`` maps."""
    head = (map_header(3), TYPE_SNAPSHOT, KEY_SERVER_TIME_AT, pack(server_time_at), KEY_NODES)
    return b"".join((*head, array_header(len(entries)), *entries))
