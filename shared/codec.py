"""Encode and decode whole nodewatch messages: msgpack for binary frames, JSON for text.

Websockets already frame messages, so this works on one complete frame at a
time; there is no stream buffer. Decoding is hardened for untrusted input:
every failure, whatever the bytes, raises ``ProtocolError`` and nothing else.

Not here: which message is allowed when (that is each endpoint's state
machine) and any I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack
from pydantic import TypeAdapter, ValidationError

from shared.errors import ErrorReason, ProtocolError
from shared.limits import PROTOCOL_VERSION
from shared.messages import Message


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Hard limits applied before any schema validation."""

    max_frame_bytes: int
    max_container_len: int
    max_str_len: int
    max_depth: int


# An agent heartbeat is ~0.5 KiB; 64 KiB leaves room for 1,024 cores.
INGEST_LIMITS = DecodeLimits(max_frame_bytes=64 * 1024, max_container_len=4096, max_str_len=4096, max_depth=8)
# Viewer requests are tiny.
SUBSCRIBE_REQUEST_LIMITS = DecodeLimits(max_frame_bytes=4096, max_container_len=64, max_str_len=1024, max_depth=4)
# A snapshot of a large fleet is big, but it comes from the collector the viewer chose.
COLLECTOR_LIMITS = DecodeLimits(
    max_frame_bytes=256 * 1024 * 1024, max_container_len=200_000, max_str_len=64 * 1024, max_depth=10
)

_MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
# msgpack's float32 type byte (spec: "float 32 stores a floating point number in IEEE 754 single precision").
_FLOAT32 = b"\xca"


def encode(message: Message) -> bytes:
    """Return one binary frame for ``message``; absent optional fields are omitted."""
    packed: bytes = msgpack.packb(message.model_dump(mode="python", exclude_none=True), use_bin_type=True)
    return packed


def encode_json(message: Message) -> str:
    """Return one text frame for ``message``: the same map as the msgpack frame."""
    return message.model_dump_json(exclude_none=True)


def to_wire_dict(message: Message) -> dict[str, Any]:
    """Return the map that ``encode`` packs, for callers that batch their own frames."""
    return message.model_dump(mode="python", exclude_none=True)


def decode(data: bytes, limits: DecodeLimits = INGEST_LIMITS) -> Message:
    """Parse one binary frame into a message, or raise ``ProtocolError``."""
    return validate_message(unpack_frame(data, limits), limits)


class FrameDecoder:
    """Decodes binary frames and hands back, with each message, the frame to relay it as.

    The relay frame is the peer's own bytes unless the peer packed a float as float32,
    which docs/protocol.md (section 2) forbids on the wire: then it is those bytes
    repacked with float64, so what the collector forwards never carries float32. Only
    frames holding a 0xca byte (float32's type byte, also found inside other values:
    about a third of heartbeats with real-valued measurements) pay for the repack, with
    a packer kept for reuse (``msgpack.packb`` allocates a 256 KiB buffer per call).
    One decoder serves any number of connections of one event loop; it is not thread-safe.
    """

    __slots__ = ("_pack", "limits")

    def __init__(self, limits: DecodeLimits = INGEST_LIMITS) -> None:
        self.limits = limits
        # Packer writes every float as float64 (use_single_float=False); the buffer grows on demand.
        self._pack = msgpack.Packer(use_bin_type=True, buf_size=4096).pack

    def decode(self, data: bytes) -> tuple[Message, bytes]:
        """The message in ``data`` and the frame to relay it as; ``ProtocolError`` for bad input."""
        obj = unpack_frame(data, self.limits)
        message = validate_message(obj, self.limits)
        if _FLOAT32 in data:
            canonical: bytes = self._pack(obj)
            if canonical != data:  # a float32 became float64 (or some other non-minimal encoding, harmlessly)
                return message, canonical
        return message, data


def unpack_options(limits: DecodeLimits) -> dict[str, Any]:
    """msgpack's keyword arguments for a frame under ``limits``: ``unpack_frame``'s, and a streamed reader's."""
    return {
        "raw": False,
        "strict_map_key": True,
        "use_list": True,
        "max_str_len": limits.max_str_len,
        "max_bin_len": limits.max_str_len,
        "max_array_len": limits.max_container_len,
        "max_map_len": limits.max_container_len,
        "max_ext_len": 0,
        "ext_hook": _reject_ext,
    }


def stream_unpacker(limits: DecodeLimits, size: int) -> msgpack.Unpacker:
    """An ``Unpacker`` bounded as ``unpack_frame`` is, for a frame of ``size`` bytes read piece by piece."""
    return msgpack.Unpacker(max_buffer_size=size, **unpack_options(limits))


def unpack_frame(data: bytes, limits: DecodeLimits) -> object:
    """Unpack one frame under ``limits`` (size first, then msgpack's own bounds); no schema yet."""
    if len(data) > limits.max_frame_bytes:
        raise ProtocolError(
            ErrorReason.FRAME_TOO_LARGE, f"expected at most {limits.max_frame_bytes} bytes, got {len(data)}"
        )
    try:
        obj = msgpack.unpackb(data, **unpack_options(limits))
    except msgpack.ExtraData as exc:
        raise ProtocolError(ErrorReason.TRAILING_BYTES, "expected one msgpack object, got trailing bytes") from exc
    except msgpack.StackError as exc:  # msgpack's parser stack (1,024 levels) ran out before our own depth check
        raise ProtocolError(
            ErrorReason.NESTING_TOO_DEEP, f"expected nesting of at most {limits.max_depth}, got over 1024"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError(ErrorReason.INVALID_UTF8, f"expected UTF-8 strings, got {exc.object[:32]!r}") from exc
    except ValueError as exc:
        raise _classify_unpack_error(exc) from exc
    except (TypeError, RecursionError, OverflowError) as exc:  # defensive: msgpack documents only ValueError
        raise ProtocolError(ErrorReason.MALFORMED_MSGPACK, f"expected msgpack, got {exc!r:.200}") from exc
    return obj


def decode_json(text: str | bytes, limits: DecodeLimits = SUBSCRIBE_REQUEST_LIMITS) -> Message:
    """Parse one text frame into a message, or raise ``ProtocolError``."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > limits.max_frame_bytes:
        raise ProtocolError(ErrorReason.FRAME_TOO_LARGE, f"expected at most {limits.max_frame_bytes} bytes, got {size}")
    if isinstance(text, bytes):
        # Strictly: json.loads(bytes) would also take UTF-16/32 and UTF-8-encoded surrogates.
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(ErrorReason.INVALID_UTF8, f"expected UTF-8 text, got {exc.object[:32]!r}") from exc
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:  # json's C scanner recurses per level, before _check_shape can count
        raise ProtocolError(
            ErrorReason.NESTING_TOO_DEEP, f"expected nesting of at most {limits.max_depth}, got more"
        ) from exc
    except ValueError as exc:
        raise ProtocolError(ErrorReason.MALFORMED_JSON, f"expected JSON, got {exc!s:.200}") from exc
    _check_shape(obj, limits)
    return validate_message(obj, limits)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"expected a finite number, got {name}")


def _reject_ext(code: int, data: bytes) -> Any:
    """Refuse the empty ext types that ``max_ext_len=0`` lets through: the protocol uses none."""
    raise ValueError(f"msgpack ext type {code}, which nodewatch does not use")


def _classify_unpack_error(exc: ValueError) -> ProtocolError:
    text = str(exc) or type(exc).__name__  # FormatError carries no message
    if "max_ext_len" in text or "ext type" in text:
        return ProtocolError(ErrorReason.MALFORMED_MSGPACK, f"expected no msgpack ext types, got {text:.200}")
    if "exceeds max_str_len" in text or "exceeds max_bin_len" in text:
        return ProtocolError(ErrorReason.STRING_TOO_LONG, f"expected a shorter string, got {text:.200}")
    if "exceeds max_" in text:
        return ProtocolError(ErrorReason.CONTAINER_TOO_LARGE, f"expected a smaller container, got {text:.200}")
    if "map key" in text:
        return ProtocolError(ErrorReason.BAD_MAP_KEY, f"expected string map keys, got {text:.200}")
    return ProtocolError(ErrorReason.MALFORMED_MSGPACK, f"expected msgpack, got {text:.200}")


def _check_shape(obj: object, limits: DecodeLimits) -> None:
    """Reject nesting deeper, or containers longer, than ``limits`` allow; iterative on purpose."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):  # strict_map_key still admits bin keys
                raise ProtocolError(ErrorReason.BAD_MAP_KEY, "expected string map keys, got bin")
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limits.max_depth:
            raise ProtocolError(
                ErrorReason.NESTING_TOO_DEEP, f"expected nesting of at most {limits.max_depth}, got more"
            )
        if len(children) > limits.max_container_len:
            raise ProtocolError(
                ErrorReason.CONTAINER_TOO_LARGE,
                f"expected at most {limits.max_container_len} items, got {len(children)}",
            )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def validate_message(obj: object, limits: DecodeLimits) -> Message:
    """Validate against the schema; only a frame the schema refuses pays for the shape walk.

    Every valid message is shallower than any ``max_depth`` here, and an unpacked
    msgpack frame's containers were already bounded by the unpacker, so a frame
    that validates cannot break ``limits``. A frame that does not is walked first,
    so a too-deep or too-wide frame is still reported as such, not as ``schema``.
    """
    if not isinstance(obj, dict):
        _check_shape(obj, limits)
        raise ProtocolError(ErrorReason.NOT_A_MESSAGE, f"expected a map, got {type(obj).__name__}")
    if isinstance(obj.get("type"), str) and obj["type"] == "hello":
        version = obj.get("protocol_version")
        if version != PROTOCOL_VERSION:
            _check_shape(obj, limits)
            raise ProtocolError(
                ErrorReason.UNSUPPORTED_VERSION, f"expected protocol_version {PROTOCOL_VERSION}, got {version!r:.40}"
            )
    try:
        message = _MESSAGE_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        _check_shape(obj, limits)
        raise _classify_validation_error(exc) from exc
    return message


def _classify_validation_error(exc: ValidationError) -> ProtocolError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"type": "unknown", "loc": (), "msg": str(exc)}
    kind = first["type"]
    where = ".".join(str(part) for part in first["loc"]) or "<message>"
    if kind == "union_tag_invalid":
        return ProtocolError(ErrorReason.UNKNOWN_TYPE, f"expected a known message type, got {first['msg']:.200}")
    if kind in {"union_tag_not_found", "model_attributes_type", "dict_type"} and not first["loc"]:
        return ProtocolError(ErrorReason.NOT_A_MESSAGE, f"expected a map with a 'type' key: {first['msg']:.200}")
    return ProtocolError(ErrorReason.SCHEMA, f"{where}: {first['msg']:.200} ({len(errors)} error(s))")
