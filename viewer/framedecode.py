"""Decode the collector's frames on the network thread in slices, so the UI thread gets the GIL.

``shared.codec.decode`` unpacks a frame in one msgpack call and validates it in one pydantic
call, both holding the GIL: for a 10,000-node fleet that is ~9 ms to unpack a median 680 KB
update and 80 ms for a 2.6 MB one, plus ~10 µs per entry to validate, while the UI thread
waits (README "Viewer responsiveness"). Here a big frame's top map is read key by key and its
``nodes`` entry by entry (one short msgpack call each), and a snapshot's or update's entries
are validated ``SLICE_ENTRIES`` at a time, with the same models: between two calls the
interpreter can hand the GIL to the UI thread (``sys.getswitchinterval()``).

Same checks as ``decode``: the streamed unpacker takes ``COLLECTOR_LIMITS``'s bounds, string
keys only, no ext types and no trailing bytes; the envelope is validated by the message union
and each entry by ``NodeEntry``. If any step fails, or the frame is small, the frame goes
through the codec's own ``unpack_frame`` and ``validate_message``, so a bad frame is refused
with exactly the ``ProtocolError`` ``decode`` gives (reason, detail, close code).
Not here: what a message means to the link (``viewer.worker``); any I/O.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack
from pydantic import TypeAdapter, ValidationError

from shared.codec import COLLECTOR_LIMITS, DecodeLimits, stream_unpacker
from shared.codec import unpack_frame as unpack  # the codec's own hardened steps decide every refusal
from shared.codec import validate_message as validate
from shared.limits import MAX_NODES_PER_MESSAGE
from shared.messages import Message, NodeEntry, Snapshot, Update

# ~10 µs per entry to validate: 128 entries hold the GIL ~1.3 ms, well under the 5 ms switch
# interval, and the per-call overhead (~1 µs) stays under 1 %.
SLICE_ENTRIES: Final = 128
# Smaller frames are unpacked in one call: ~8 µs per ~700-byte entry, so 64 KiB is under 1 ms.
STREAM_BYTES: Final = 64 * 1024
# The messages whose ``nodes`` are validated in slices (the big ones: a fleet's entries).
_SLICED_TYPES: Final = frozenset({"update", "snapshot"})
# What the streamed path cannot tell apart from a refusal: it then leaves the verdict to the codec.
_UNPACK_ERRORS: Final = (msgpack.UnpackException, ValueError, TypeError, RecursionError, OverflowError)

_MESSAGE: Final[TypeAdapter[Message]] = TypeAdapter(Message)
_ENTRIES: Final[TypeAdapter[list[NodeEntry]]] = TypeAdapter(list[NodeEntry])


def decode_frame(data: bytes) -> Message:
    """The message in one collector frame, or ``ProtocolError`` exactly as ``shared.codec.decode`` raises it."""
    streamed = _unpack_streamed(data, COLLECTOR_LIMITS) if len(data) > STREAM_BYTES else None
    obj = unpack(data, COLLECTOR_LIMITS) if streamed is None else streamed
    nodes = obj.get("nodes") if isinstance(obj, dict) and obj.get("type") in _SLICED_TYPES else None
    if not isinstance(obj, dict) or not isinstance(nodes, list) or len(nodes) <= SLICE_ENTRIES:
        return validate(obj, COLLECTOR_LIMITS)  # small or not a fleet message: one call costs no more
    try:
        message = _validate_sliced(obj, nodes)
    except ValidationError:
        message = None
    return validate(obj, COLLECTOR_LIMITS) if message is None else message  # a refusal worded as always


def _unpack_streamed(data: bytes, limits: DecodeLimits) -> dict[str, Any] | None:
    """``data``'s top map as ``unpack_frame`` would give it, one short call per key and entry (None: ask the codec)."""
    if len(data) > limits.max_frame_bytes:
        return None
    unpacker = stream_unpacker(limits, len(data))
    try:
        unpacker.feed(data)
        keys = unpacker.read_map_header()
        if keys > limits.max_container_len:  # a header read by hand: bound it as unpackb does
            return None
        obj: dict[str, Any] = {}
        for _ in range(keys):
            key = unpacker.unpack()
            if not isinstance(key, str):  # strict_map_key does not cover the map read by hand
                return None
            if key == "nodes":  # not an array: read_array_header raises, and the codec words it
                count = unpacker.read_array_header()
                if count > limits.max_container_len:
                    return None
                obj[key] = [unpacker.unpack() for _ in range(count)]
            else:
                obj[key] = unpacker.unpack()
    except _UNPACK_ERRORS:
        return None
    return obj if unpacker.tell() == len(data) else None  # trailing bytes: the codec says so


def _validate_sliced(obj: dict[str, object], nodes: list[object]) -> Snapshot | Update | None:
    """``obj`` as a ``Snapshot`` or ``Update``: the envelope in one call, then the entries slice by slice."""
    if len(nodes) > MAX_NODES_PER_MESSAGE:
        return None
    envelope = _MESSAGE.validate_python({**obj, "nodes": []})
    if not isinstance(envelope, Snapshot | Update):
        return None
    entries: list[NodeEntry] = []
    for start in range(0, len(nodes), SLICE_ENTRIES):
        entries.extend(_ENTRIES.validate_python(nodes[start : start + SLICE_ENTRIES]))
    # model_copy skips validation on purpose: every part was validated just above.
    return envelope.model_copy(update={"nodes": entries})
