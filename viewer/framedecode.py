"""Decode the collector's frames on the network thread in slices, so the UI thread gets the GIL.

``shared.codec.decode`` validates a whole frame in one pydantic call: 17 ms for a median
680 KB update of a 10,000-node fleet and 45 ms and more for the multi-MB ones, all of it
holding the GIL while the UI thread waits (README "Viewer responsiveness"). Here an update's
node entries are validated ``SLICE_ENTRIES`` at a time, with the same models: between two
slices the interpreter can hand the GIL to the UI thread (``sys.getswitchinterval()``).

Same checks as ``decode``: the bytes are unpacked by the codec's own unpacker with
``COLLECTOR_LIMITS``, the update's other fields by the message union, and each entry by
``NodeEntry``. If any part fails, the whole map is validated again by the codec's own
``validate_message``, so a bad frame is refused with exactly the ``ProtocolError`` ``decode`` gives
(reason, detail, close code). Other messages, and updates of few entries, go straight to it.
Not here: what a message means to the link (``viewer.worker``); any I/O.
"""

from __future__ import annotations

from typing import Final

from pydantic import TypeAdapter, ValidationError

from shared.codec import COLLECTOR_LIMITS
from shared.codec import unpack_frame as unpack  # the codec's own hardened steps, not copies of them
from shared.codec import validate_message as validate
from shared.limits import MAX_NODES_PER_MESSAGE
from shared.messages import Message, NodeEntry, Update

# ~10 µs per entry to validate: 128 entries hold the GIL ~1.3 ms, well under the 5 ms switch
# interval, and the per-call overhead (~1 µs) stays under 1 %.
SLICE_ENTRIES: Final = 128

_MESSAGE: Final[TypeAdapter[Message]] = TypeAdapter(Message)
_ENTRIES: Final[TypeAdapter[list[NodeEntry]]] = TypeAdapter(list[NodeEntry])


def decode_frame(data: bytes) -> Message:
    """The message in one collector frame, or ``ProtocolError`` exactly as ``shared.codec.decode`` raises it."""
    obj = unpack(data, COLLECTOR_LIMITS)
    nodes = obj.get("nodes") if isinstance(obj, dict) and obj.get("type") == "update" else None
    if not isinstance(obj, dict) or not isinstance(nodes, list) or len(nodes) <= SLICE_ENTRIES:
        return validate(obj, COLLECTOR_LIMITS)  # small or not an update: one call costs no more
    try:
        update = _validate_sliced(obj, nodes)
    except ValidationError:
        update = None
    return validate(obj, COLLECTOR_LIMITS) if update is None else update  # a refusal worded as always


def _validate_sliced(obj: dict[str, object], nodes: list[object]) -> Update | None:
    """``obj`` as an ``Update``: the envelope in one call, then the entries slice by slice (None: refused)."""
    if len(nodes) > MAX_NODES_PER_MESSAGE:
        return None
    envelope = _MESSAGE.validate_python({**obj, "nodes": []})
    if not isinstance(envelope, Update):
        return None
    entries: list[NodeEntry] = []
    for start in range(0, len(nodes), SLICE_ENTRIES):
        entries.extend(_ENTRIES.validate_python(nodes[start : start + SLICE_ENTRIES]))
    # model_copy skips validation on purpose: every part was validated just above.
    return envelope.model_copy(update={"nodes": entries})
