"""The agent's side of the wire: plain-dict frames packed with msgpack, and a small decoder for acks.

Why not ``shared.codec`` here: importing pydantic and building the models costs
the agent ~10 MB of its 20 MB RSS budget (bench/agent_overhead.py), and the
agent only ever sends two message types and receives two. So the agent builds
the same maps that ``shared.codec.encode`` would pack, key for key in model
field order, and tests/agent prove that every frame decodes with
``shared.codec.decode`` and is byte-identical to ``encode(Model(...))``.
Not here: any other message type, or validation of what the agent itself builds
(the tests do that against ``shared.messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from shared.errors import ErrorReason, ProtocolError

MAX_INBOUND_BYTES = 64 * 1024  # the collector only sends acks and errors, each a few dozen bytes
_MAX_SEQ = 2**63 - 1

WireDict = dict[str, Any]


def pack(fields: Mapping[str, Any]) -> bytes:
    """Pack one message map, leaving out absent (None) fields as ``shared.codec.encode`` does."""
    packed: bytes = msgpack.packb({k: v for k, v in fields.items() if v is not None}, use_bin_type=True)
    return packed


@dataclass(frozen=True, slots=True)
class InboundAck:
    """``Ack(seq)``: the collector holds every sample up to ``seq``."""

    seq: int


@dataclass(frozen=True, slots=True)
class InboundError:
    """``Error(reason, detail)``: sent before the collector closes for a reason of ours."""

    reason: str
    detail: str


def decode_inbound(data: bytes) -> InboundAck | InboundError:
    """Decode a frame from the collector, or raise ``ProtocolError``; anything but ack/error is unexpected."""
    if len(data) > MAX_INBOUND_BYTES:
        raise ProtocolError(ErrorReason.FRAME_TOO_LARGE, f"expected at most {MAX_INBOUND_BYTES} bytes, got {len(data)}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_str_len=2048, max_bin_len=0,
                              max_array_len=16, max_map_len=16, max_ext_len=0)  # fmt: skip
    except msgpack.ExtraData as exc:
        raise ProtocolError(ErrorReason.TRAILING_BYTES, "expected one msgpack object, got trailing bytes") from exc
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise ProtocolError(ErrorReason.MALFORMED_MSGPACK, f"expected msgpack, got {exc!r:.200}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorReason.NOT_A_MESSAGE, f"expected a map, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "ack":
        seq = obj.get("seq")
        if set(obj) != {"type", "seq"} or type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
            raise ProtocolError(ErrorReason.SCHEMA, f"expected an ack with an integer seq >= 0, got {obj!r:.200}")
        return InboundAck(seq)
    if kind == "error":
        reason, detail = obj.get("reason"), obj.get("detail")
        if set(obj) != {"type", "reason", "detail"} or not isinstance(reason, str) or not isinstance(detail, str):
            raise ProtocolError(ErrorReason.SCHEMA, f"expected an error with reason and detail, got {obj!r:.200}")
        return InboundError(reason[:64], detail[:1024])
    raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected an ack or an error, got type {kind!r:.40}")
