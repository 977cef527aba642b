"""Tests of shared.codec: round-trips of every message, and one ProtocolError per class of bad input."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.codec import (
    COLLECTOR_LIMITS,
    INGEST_LIMITS,
    SUBSCRIBE_REQUEST_LIMITS,
    DecodeLimits,
    FrameDecoder,
    _check_shape,
    decode,
    decode_json,
    encode,
    encode_json,
    to_wire_dict,
)
from shared.errors import CLOSE_CODE_FOR_REASON, CloseCode, ErrorReason, ProtocolError
from shared.limits import PROTOCOL_VERSION
from shared.messages import (
    MESSAGE_TYPES,
    Ack,
    Error,
    Heartbeat,
    Hello,
    HistoryRequest,
    NodeFacts,
    NodeHistory,
    Snapshot,
    Update,
    WireModel,
)
from tests.support.strategies import MESSAGE_STRATEGIES, messages

# The limits of the endpoint that receives each message type in production.
RECEIVER_LIMITS: dict[type[WireModel], DecodeLimits] = {
    Hello: INGEST_LIMITS,
    Heartbeat: INGEST_LIMITS,
    Ack: COLLECTOR_LIMITS,
    Error: COLLECTOR_LIMITS,
    Snapshot: COLLECTOR_LIMITS,
    Update: COLLECTOR_LIMITS,
    HistoryRequest: SUBSCRIBE_REQUEST_LIMITS,
    NodeHistory: COLLECTOR_LIMITS,
}
ALL_LIMITS = [INGEST_LIMITS, SUBSCRIBE_REQUEST_LIMITS, COLLECTOR_LIMITS]
ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pack(obj: object) -> bytes:
    """Pack ``obj`` as a peer might, without our encoder's validation."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True, strict_types=False)
    return packed


FACTS = NodeFacts(
    hostname="web-1",
    os="Linux",
    os_release="6.1.0",
    platform="Linux-6.1.0-x86_64",
    arch="x86_64",
    memory_total_bytes=8 * 2**30,
    agent_version="0.1.0",
    python_version="3.11.2",
)
HELLO = Hello(node_id="web-1", agent_instance_id="abc123", interval_s=1.0, sent_at=1_700_000_000.0, facts=FACTS)
HEARTBEAT = Heartbeat(seq=7, sampled_at=1_700_000_001.5, cpu_percent=12.5, mem_percent=40.0)
ACK = Ack(seq=7)
HELLO_MAP = to_wire_dict(HELLO)
HEARTBEAT_MAP = to_wire_dict(HEARTBEAT)
ACK_MAP = to_wire_dict(ACK)
NAN = float("nan")
INT64_OR_UINT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry
INF = float("inf")


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


def _history_map(**changes: Any) -> dict[str, Any]:
    columns = {
        "seq": [1],
        "sampled_at": [1.0],
        "cpu_percent": [1.0],
        "mem_percent": [None],
        "load_1": [0.5],
        "net_rx_bytes_per_s": [0.0],
        "net_tx_bytes_per_s": [0.0],
        "disk_read_bytes_per_s": [0.0],
        "disk_write_bytes_per_s": [0.0],
    }
    return {"type": "history", "node_id": "web-1", "history": {**columns, **changes}}


def _status_entry(**changes: Any) -> dict[str, Any]:
    status = {
        "node_id": "web-1",
        "state": "online",
        "state_since_at": 1.0,
        "interval_s": 1.0,
        "agent_instance_id": "abc",
        "connected": True,
        "last_seq": 3,
    }
    return {"type": "update", "server_time_at": 2.0, "nodes": [{"status": {**status, **changes}}]}


# fmt: off
# (id, frame bytes, limits of the receiving endpoint, the reason the peer is told)
MSGPACK_CASES: list[tuple[str, bytes, DecodeLimits, ErrorReason]] = [
    # truncated msgpack
    ("empty-frame", b"", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("truncated-hello", encode(HELLO)[:-1], INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("truncated-in-header", encode(HELLO)[:1], INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("truncated-float64", b"\xcb\x00\x00", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("reserved-byte-0xc1", b"\xc1", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    # trailing bytes
    ("trailing-nil", encode(ACK) + b"\xc0", INGEST_LIMITS, ErrorReason.TRAILING_BYTES),
    ("two-frames-in-one", encode(HEARTBEAT) + encode(HEARTBEAT), INGEST_LIMITS, ErrorReason.TRAILING_BYTES),
    # wrong types (strict: no coercion)
    ("seq-as-string", _pack(_with(ACK_MAP, seq="7")), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("seq-as-float", _pack(_with(ACK_MAP, seq=7.0)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("seq-as-bool", _pack(_with(HEARTBEAT_MAP, seq=True)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("percent-as-string", _pack(_with(HEARTBEAT_MAP, cpu_percent="12.5")), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("node-id-as-bin", _pack(_with(HELLO_MAP, node_id=b"web-1")), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("facts-as-list", _pack(_with(HELLO_MAP, facts=[1, 2])), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("load-avg-of-two", _pack(_with(HEARTBEAT_MAP, load_avg=[1.0, 2.0])), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("seq-zero", _pack(_with(HEARTBEAT_MAP, seq=0)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("seq-over-int64", _pack(_with(HEARTBEAT_MAP, seq=2**64 - 1)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("percent-over-100", _pack(_with(HEARTBEAT_MAP, cpu_percent=100.5)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("bad-node-id", _pack(_with(HELLO_MAP, node_id="web 1")), INGEST_LIMITS, ErrorReason.SCHEMA),
    # missing fields
    ("ack-without-seq", _pack(_without(ACK_MAP, "seq")), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("hello-without-facts", _pack(_without(HELLO_MAP, "facts")), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("facts-without-hostname", _pack(_with(HELLO_MAP, facts=_without(HELLO_MAP["facts"], "hostname"))),
     INGEST_LIMITS, ErrorReason.SCHEMA),
    # extra keys
    ("extra-top-level-key", _pack(_with(ACK_MAP, extra=1)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("extra-nested-key", _pack(_with(HELLO_MAP, facts=_with(HELLO_MAP["facts"], gpu="yes"))),
     INGEST_LIMITS, ErrorReason.SCHEMA),
    # unknown message type, or none
    ("unknown-type", _pack(_with(ACK_MAP, type="reboot")), INGEST_LIMITS, ErrorReason.UNKNOWN_TYPE),
    ("type-case-differs", _pack(_with(ACK_MAP, type="Ack")), INGEST_LIMITS, ErrorReason.UNKNOWN_TYPE),
    ("type-nil", _pack(_with(ACK_MAP, type=None)), INGEST_LIMITS, ErrorReason.UNKNOWN_TYPE),
    ("type-as-bin", _pack(_with(ACK_MAP, type=b"ack")), INGEST_LIMITS, ErrorReason.UNKNOWN_TYPE),
    ("no-type-key", _pack(_without(ACK_MAP, "type")), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    # non-map top level
    ("top-level-array", _pack([ACK_MAP]), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("top-level-int", _pack(1), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("top-level-str", _pack("ack"), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("top-level-nil", _pack(None), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("empty-map", _pack({}), INGEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    # oversize frame: refused by length alone, before any parsing
    ("ingest-frame-over-64KiB", _pack(_with(ACK_MAP, pad="x" * 65536)), INGEST_LIMITS,
     ErrorReason.FRAME_TOO_LARGE),
    ("request-frame-over-4KiB", b"\x00" * 4097, SUBSCRIBE_REQUEST_LIMITS, ErrorReason.FRAME_TOO_LARGE),
    # containers claiming or holding more items than allowed
    ("array-claiming-4G-items", b"\xdd\xff\xff\xff\xff", INGEST_LIMITS, ErrorReason.CONTAINER_TOO_LARGE),
    ("map-claiming-4G-items", b"\xdf\xff\xff\xff\xff", INGEST_LIMITS, ErrorReason.CONTAINER_TOO_LARGE),
    # a str or bin header is only believed once its bytes are there: without them it is a truncated frame
    ("str-claiming-4GiB", b"\xdb\xff\xff\xff\xff", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("bin-claiming-4GiB", b"\xc6\xff\xff\xff\xff", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("bin-of-4097-bytes", _pack(_with(HELLO_MAP, node_id=b"a" * 4097)), INGEST_LIMITS,
     ErrorReason.STRING_TOO_LONG),
    ("array-of-4097", _pack(_with(HEARTBEAT_MAP, cpu_per_core_percent=[1.0] * 4097)), INGEST_LIMITS,
     ErrorReason.CONTAINER_TOO_LARGE),
    ("request-array-of-65", _pack({"type": "history_request", "node_id": "a", "x": [0] * 65}),
     SUBSCRIBE_REQUEST_LIMITS, ErrorReason.CONTAINER_TOO_LARGE),
    ("str-of-4097-bytes", _pack(_with(HELLO_MAP, node_id="a" * 4097)), INGEST_LIMITS,
     ErrorReason.STRING_TOO_LONG),
    ("cores-over-model-limit", _pack(_with(HEARTBEAT_MAP, cpu_per_core_percent=[1.0] * 1025)), INGEST_LIMITS,
     ErrorReason.SCHEMA),
    # deep nesting: over the limit, and far past msgpack's own parser stack (1024)
    ("nested-9-deep", b"\x91" * 8 + b"\x81\xa1a\x01", INGEST_LIMITS, ErrorReason.NESTING_TOO_DEEP),
    ("nested-in-a-field", _pack(_with(HEARTBEAT_MAP, temperatures={"a": [[[[[[[[1.0]]]]]]]]})), INGEST_LIMITS,
     ErrorReason.NESTING_TOO_DEEP),
    ("nested-5000-deep", b"\x91" * 5000 + b"\x01", INGEST_LIMITS, ErrorReason.NESTING_TOO_DEEP),
    ("maps-nested-2000-deep", b"\x81\xa1a" * 2000 + b"\x01", COLLECTOR_LIMITS, ErrorReason.NESTING_TOO_DEEP),
    # non-string map keys (msgpack's strict_map_key still lets bin keys through)
    ("int-key", _pack({1: 2}), INGEST_LIMITS, ErrorReason.BAD_MAP_KEY),
    ("nil-key", _pack({None: "ack"}), INGEST_LIMITS, ErrorReason.BAD_MAP_KEY),
    ("float-key-in-field", _pack(_with(HEARTBEAT_MAP, temperatures={1.5: 20.0})), INGEST_LIMITS,
     ErrorReason.BAD_MAP_KEY),
    ("array-key", b"\x81\x91\x01\x01", INGEST_LIMITS, ErrorReason.BAD_MAP_KEY),
    ("bin-keys-top-level", _pack({b"type": "ack", b"seq": 1}), INGEST_LIMITS, ErrorReason.BAD_MAP_KEY),
    ("bin-key-in-field", _pack(_with(HEARTBEAT_MAP, temperatures={b"cpu": 20.0})), INGEST_LIMITS,
     ErrorReason.BAD_MAP_KEY),
    # invalid UTF-8
    ("invalid-utf8-value", _pack(_with(HELLO_MAP, node_id="@@")).replace(b"@@", b"\xff\xfe"), INGEST_LIMITS,
     ErrorReason.INVALID_UTF8),
    ("invalid-utf8-key", _pack(_with(ACK_MAP, zz=1)).replace(b"zz", b"\xc3\x28"), INGEST_LIMITS,
     ErrorReason.INVALID_UTF8),
    ("utf8-encoded-surrogate", _pack(_with(HELLO_MAP, node_id="@@@")).replace(b"@@@", b"\xed\xa0\x80"),
     INGEST_LIMITS, ErrorReason.INVALID_UTF8),
    ("overlong-utf8", _pack(_with(HELLO_MAP, node_id="@@")).replace(b"@@", b"\xc0\xaf"), INGEST_LIMITS,
     ErrorReason.INVALID_UTF8),
    # NaN or inf, allowed nowhere
    ("nan-percent", _pack(_with(HEARTBEAT_MAP, cpu_percent=NAN)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("inf-rate", _pack(_with(HEARTBEAT_MAP, net_rx_bytes_per_s=INF)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("minus-inf-temperature", _pack(_with(HEARTBEAT_MAP, temperatures={"cpu": -INF})), INGEST_LIMITS,
     ErrorReason.SCHEMA),
    ("float32-nan-sampled-at", _pack(_with(HEARTBEAT_MAP, sampled_at="@@")).replace(
        b"\xa2@@", b"\xca" + struct.pack(">f", NAN)), INGEST_LIMITS, ErrorReason.SCHEMA),
    ("nan-in-core-list", _pack(_with(HEARTBEAT_MAP, cpu_per_core_percent=[1.0, NAN])), INGEST_LIMITS,
     ErrorReason.SCHEMA),
    ("nan-in-history", _pack(_history_map(cpu_percent=[NAN])), COLLECTOR_LIMITS, ErrorReason.SCHEMA),
    ("inf-clock-skew", _pack(_status_entry(clock_skew_s=INF)), COLLECTOR_LIMITS, ErrorReason.SCHEMA),
    ("nan-interval", _pack(_with(HELLO_MAP, interval_s=NAN)), INGEST_LIMITS, ErrorReason.SCHEMA),
    # protocol version, checked in the hello before anything else in it
    ("hello-version-2", _pack(_with(HELLO_MAP, protocol_version=PROTOCOL_VERSION + 1)), INGEST_LIMITS,
     ErrorReason.UNSUPPORTED_VERSION),
    ("hello-version-0", _pack(_with(HELLO_MAP, protocol_version=0)), INGEST_LIMITS,
     ErrorReason.UNSUPPORTED_VERSION),
    ("hello-version-as-string", _pack(_with(HELLO_MAP, protocol_version="1")), INGEST_LIMITS,
     ErrorReason.UNSUPPORTED_VERSION),
    ("hello-version-2-and-bad-fields", _pack({"type": "hello", "protocol_version": 2, "future": True}),
     INGEST_LIMITS, ErrorReason.UNSUPPORTED_VERSION),
    ("hello-version-as-float", _pack(_with(HELLO_MAP, protocol_version=1.0)), INGEST_LIMITS, ErrorReason.SCHEMA),
    # msgpack ext types: the protocol uses none
    ("fixext1-top-level", b"\xd4\x01\x00", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("ext-in-field", _pack(_with(ACK_MAP, seq=msgpack.ExtType(5, b"abcd"))), INGEST_LIMITS,
     ErrorReason.MALFORMED_MSGPACK),
    ("timestamp-ext", _pack(_with(HEARTBEAT_MAP, sampled_at=msgpack.Timestamp(1_700_000_000))), INGEST_LIMITS,
     ErrorReason.MALFORMED_MSGPACK),
    ("empty-ext-top-level", b"\xc7\x00\x05", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
    ("empty-ext-in-field", _pack(_with(ACK_MAP, seq="@@")).replace(b"\xa2@@", b"\xc7\x00\x05"), INGEST_LIMITS,
     ErrorReason.MALFORMED_MSGPACK),
    ("empty-timestamp-ext", b"\xc7\x00\xff", INGEST_LIMITS, ErrorReason.MALFORMED_MSGPACK),
]

# (id, text frame, limits, reason)
JSON_CASES: list[tuple[str, str | bytes, DecodeLimits, ErrorReason]] = [
    ("nan-constant", '{"type": "ack", "seq": NaN}', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.MALFORMED_JSON),
    ("infinity-constant", '{"type": "heartbeat", "seq": 1, "sampled_at": Infinity}', INGEST_LIMITS,
     ErrorReason.MALFORMED_JSON),
    ("minus-infinity-constant", '{"type": "heartbeat", "seq": 1, "sampled_at": -Infinity}', INGEST_LIMITS,
     ErrorReason.MALFORMED_JSON),
    ("overflowing-float", '{"type": "heartbeat", "seq": 1, "sampled_at": 1e999}', INGEST_LIMITS,
     ErrorReason.SCHEMA),
    ("truncated", '{"type": "history_request", "node_id": "a"', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.MALFORMED_JSON),
    ("trailing-data", '{"type": "history_request", "node_id": "a"} {}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.MALFORMED_JSON),
    ("empty-text", "", SUBSCRIBE_REQUEST_LIMITS, ErrorReason.MALFORMED_JSON),
    ("single-quotes", "{'type': 'history_request'}", SUBSCRIBE_REQUEST_LIMITS, ErrorReason.MALFORMED_JSON),
    ("int-over-4300-digits", '{"type": "ack", "seq": ' + "9" * 4301 + "}", INGEST_LIMITS,
     ErrorReason.MALFORMED_JSON),
    ("invalid-utf8-bytes", b'{"type": "history_request", "node_id": "\xff"}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.INVALID_UTF8),
    ("utf16-bytes", '{"type": "history_request", "node_id": "a"}'.encode("utf-16"), SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.INVALID_UTF8),
    ("utf8-encoded-surrogate-bytes", b'{"type": "history_request", "node_id": "a\xed\xa0\x80"}',
     SUBSCRIBE_REQUEST_LIMITS, ErrorReason.INVALID_UTF8),
    ("lone-surrogate-escape", '{"type": "history_request", "node_id": "\\ud800"}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.SCHEMA),
    ("oversize", '{"type": "history_request", "node_id": "' + "a" * 4096 + '"}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.FRAME_TOO_LARGE),
    ("oversize-in-utf8-bytes", '{"x": "' + "\u00e9" * 2045 + '"}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.FRAME_TOO_LARGE),
    ("nested-5-deep", '{"type": "history_request", "node_id": [[[["a"]]]]}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.NESTING_TOO_DEEP),
    ("nested-past-the-recursion-limit", "[" * 100_000 + "]" * 100_000, COLLECTOR_LIMITS,
     ErrorReason.NESTING_TOO_DEEP),
    ("array-of-65", '{"type": "history_request", "node_id": "a", "x": [' + ",".join(["0"] * 65) + "]}",
     SUBSCRIBE_REQUEST_LIMITS, ErrorReason.CONTAINER_TOO_LARGE),
    ("unknown-type", '{"type": "subscribe", "node_id": "a"}', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.UNKNOWN_TYPE),
    ("no-type", '{"node_id": "a"}', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("top-level-array", '[{"type": "history_request", "node_id": "a"}]', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.NOT_A_MESSAGE),
    ("top-level-string", '"history_request"', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.NOT_A_MESSAGE),
    ("missing-node-id", '{"type": "history_request"}', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.SCHEMA),
    ("extra-key", '{"type": "history_request", "node_id": "a", "all": true}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.SCHEMA),
    ("node-id-as-number", '{"type": "history_request", "node_id": 1}', SUBSCRIBE_REQUEST_LIMITS,
     ErrorReason.SCHEMA),
    ("seq-as-float", '{"type": "ack", "seq": 1.0}', SUBSCRIBE_REQUEST_LIMITS, ErrorReason.SCHEMA),
    ("hello-version-2", json.dumps(_with(HELLO_MAP, protocol_version=2)), INGEST_LIMITS,
     ErrorReason.UNSUPPORTED_VERSION),
]
# fmt: on


def _assert_protocol_error(error: ProtocolError, reason: ErrorReason) -> None:
    """What a peer sees: the reason and the close code from the one table, and a readable detail."""
    assert type(error) is ProtocolError
    assert error.reason is reason, f"expected {reason}, got {error.reason}: {error.detail}"
    assert error.close_code is CLOSE_CODE_FOR_REASON[reason]
    assert isinstance(error.close_code, CloseCode)
    assert error.detail.strip()
    assert not error.detail.rstrip().endswith("got"), f"detail names nothing: {error.detail!r}"


def _outcome(decoder: Any, payload: bytes | str, limits: DecodeLimits) -> WireModel | ProtocolError:
    """Decode; return the message or the ProtocolError. Any other exception fails the calling test."""
    try:
        message: WireModel = decoder(payload, limits)
    except ProtocolError as error:
        refused = error
    else:
        return message
    assert isinstance(refused.close_code, CloseCode)
    return refused


class TestRoundTrip:
    """Every message survives encode -> decode unchanged, in msgpack and in JSON."""

    def test_every_message_type_has_a_strategy(self) -> None:
        """The round-trip tests below cover every top-level message class, so a new one cannot slip by."""
        assert set(MESSAGE_STRATEGIES) == set(MESSAGE_TYPES)
        assert set(RECEIVER_LIMITS) == set(MESSAGE_TYPES)

    @pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda cls: cls.__name__)
    @ROUND_TRIP
    @given(data=st.data())
    def test_msgpack_round_trip(self, message_type: type[WireModel], data: st.DataObject) -> None:
        """A message decodes, under its receiver's limits, to an equal message of the same class."""
        message = data.draw(MESSAGE_STRATEGIES[message_type])
        decoded = decode(encode(message), RECEIVER_LIMITS[message_type])
        assert type(decoded) is message_type
        assert decoded == message

    @pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda cls: cls.__name__)
    @ROUND_TRIP
    @given(data=st.data())
    def test_json_round_trip(self, message_type: type[WireModel], data: st.DataObject) -> None:
        """A text frame decodes, under its receiver's limits, to an equal message of the same class."""
        message = data.draw(MESSAGE_STRATEGIES[message_type])
        decoded = decode_json(encode_json(message), RECEIVER_LIMITS[message_type])
        assert type(decoded) is message_type
        assert decoded == message

    @ROUND_TRIP
    @given(message=messages)
    def test_json_and_msgpack_carry_the_same_map(self, message: Any) -> None:
        """A ?format=json subscriber sees the very map a msgpack one does, and to_wire_dict is that map."""
        packed_map = msgpack.unpackb(encode(message), raw=False)
        assert json.loads(encode_json(message)) == packed_map
        assert to_wire_dict(message) == packed_map

    def test_absent_fields_are_omitted_not_zeroed(self) -> None:
        """An unmeasured field is left out of the frame, so a reader can tell it from a measured 0."""
        frame_map = msgpack.unpackb(encode(Heartbeat(seq=1, sampled_at=1.0)), raw=False)
        assert frame_map == {"type": "heartbeat", "seq": 1, "sampled_at": 1.0}
        assert decode(encode(Heartbeat(seq=1, sampled_at=1.0, cpu_percent=0.0))).cpu_percent == 0.0  # type: ignore[union-attr]

    def test_floats_travel_as_float64(self) -> None:
        """Epoch seconds keep sub-microsecond precision: floats are packed as float64, never float32."""
        sampled_at = 1_700_000_000.123456
        frame = encode(Heartbeat(seq=1, sampled_at=sampled_at))
        assert b"\xcb" + struct.pack(">d", sampled_at) in frame
        assert decode(frame).sampled_at == sampled_at  # type: ignore[union-attr]

    def test_float32_from_a_peer_is_read_and_relayed_as_float64(self) -> None:
        """A frame with float32 decodes to the same values, and FrameDecoder hands back a float64-only frame."""
        frame = msgpack.packb(_with(HEARTBEAT_MAP, cpu_percent=12.5), use_single_float=True)
        assert b"\xca" + struct.pack(">f", 12.5) in frame
        message, relay = FrameDecoder().decode(frame)
        assert isinstance(message, Heartbeat)
        assert message.cpu_percent == 12.5
        assert b"\xca" not in relay
        assert decode(relay) == message

    def test_a_float64_frame_is_relayed_as_its_own_bytes(self) -> None:
        """A frame the peer packed canonically is forwarded byte for byte, even when a 0xca byte sits in a value."""
        frame = encode(
            Heartbeat(
                seq=1, sampled_at=1_700_000_000.0, cpu_percent=struct.unpack(">d", b"\x40\x29\xca" + b"\0" * 5)[0]
            )
        )
        assert b"\xca" in frame
        _, relay = FrameDecoder().decode(frame)
        assert relay is frame

    def test_a_float_for_an_int_field_is_refused_even_when_whole(self) -> None:
        """1024.0 is not an int: an int field refuses any float with reason schema (docs/protocol.md, 2)."""
        with pytest.raises(ProtocolError) as info:
            decode(_pack(_with(HEARTBEAT_MAP, seq=1024.0)))
        assert info.value.reason is ErrorReason.SCHEMA

    def test_int_given_for_a_float_field_is_accepted(self) -> None:
        """Strict mode still takes a whole number where a float is expected: some encoders pack 5.0 as 5."""
        decoded = decode(_pack(_with(HEARTBEAT_MAP, sampled_at=1_700_000_000, cpu_percent=5)))
        assert isinstance(decoded, Heartbeat)
        assert decoded.sampled_at == 1_700_000_000.0
        assert decoded.cpu_percent == 5.0

    def test_json_text_may_arrive_as_bytes(self) -> None:
        """decode_json takes UTF-8 bytes as well as str, with the same result."""
        text = encode_json(HistoryRequest(node_id="web-1"))
        assert decode_json(text.encode()) == decode_json(text) == HistoryRequest(node_id="web-1")


class TestMalformedMsgpack:
    """Every class of bad binary frame ends in ProtocolError with its own reason, and nothing else."""

    @pytest.mark.parametrize(
        ("frame", "limits", "reason"),
        [pytest.param(frame, limits, reason, id=case_id) for case_id, frame, limits, reason in MSGPACK_CASES],
    )
    def test_bad_frame_is_refused_with_its_reason(
        self, frame: bytes, limits: DecodeLimits, reason: ErrorReason
    ) -> None:
        """The peer is told the specific reason, and the close code that goes with it."""
        with pytest.raises(ProtocolError) as info:
            decode(frame, limits)
        _assert_protocol_error(info.value, reason)

    def test_table_covers_every_decoding_reason(self) -> None:
        """Each reason decode can produce appears in the table at least once."""
        produced = {reason for _, _, _, reason in MSGPACK_CASES}
        assert produced == {
            ErrorReason.FRAME_TOO_LARGE,
            ErrorReason.MALFORMED_MSGPACK,
            ErrorReason.TRAILING_BYTES,
            ErrorReason.CONTAINER_TOO_LARGE,
            ErrorReason.STRING_TOO_LONG,
            ErrorReason.NESTING_TOO_DEEP,
            ErrorReason.BAD_MAP_KEY,
            ErrorReason.INVALID_UTF8,
            ErrorReason.NOT_A_MESSAGE,
            ErrorReason.UNKNOWN_TYPE,
            ErrorReason.SCHEMA,
            ErrorReason.UNSUPPORTED_VERSION,
        }

    def test_frame_at_exactly_the_limit_is_parsed(self) -> None:
        """The size limit is inclusive: a frame of exactly max_frame_bytes gets past the size check."""
        chunks = ["x" * 4000] * 16  # each under max_str_len, together just under 64 KiB

        def frame(last_chunk: str) -> bytes:
            return _pack(_with(ACK_MAP, pad=[*chunks, last_chunk]))

        exact = frame("x" * (INGEST_LIMITS.max_frame_bytes - len(frame("")) - 2))  # a str8/16 header is 2 bytes more
        assert len(exact) == INGEST_LIMITS.max_frame_bytes
        with pytest.raises(ProtocolError) as info:
            decode(exact, INGEST_LIMITS)
        _assert_protocol_error(info.value, ErrorReason.SCHEMA)  # the extra key, not the size
        with pytest.raises(ProtocolError) as info:
            decode(exact + b"\xc0", INGEST_LIMITS)
        _assert_protocol_error(info.value, ErrorReason.FRAME_TOO_LARGE)

    def test_nesting_at_exactly_the_limit_is_parsed(self) -> None:
        """max_depth levels of containers pass the shape check; one more does not."""
        at_limit = b"\x91" * (INGEST_LIMITS.max_depth - 1) + b"\x80"
        with pytest.raises(ProtocolError) as info:
            decode(at_limit)
        _assert_protocol_error(info.value, ErrorReason.NOT_A_MESSAGE)
        with pytest.raises(ProtocolError) as info:
            decode(b"\x91" + at_limit)
        _assert_protocol_error(info.value, ErrorReason.NESTING_TOO_DEEP)

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(message=messages)
    def test_every_valid_message_is_within_every_shape_limit(self, message: Any) -> None:
        """decode() skips the shape walk for frames that validate: that is safe only while this holds."""
        wire = to_wire_dict(message)
        for limits in (INGEST_LIMITS, COLLECTOR_LIMITS):
            _check_shape(wire, limits)

    def test_a_deep_frame_in_a_valid_looking_message_is_reported_as_too_deep(self) -> None:
        """A heartbeat with a deeply nested value is too deep, not merely a schema error."""
        deep: Any = 1.0
        for _ in range(INGEST_LIMITS.max_depth + 2):
            deep = [deep]
        frame = msgpack.packb({"type": "heartbeat", "seq": 1, "sampled_at": 1.0, "cpu_percent": deep})
        with pytest.raises(ProtocolError) as info:
            decode(frame, INGEST_LIMITS)
        _assert_protocol_error(info.value, ErrorReason.NESTING_TOO_DEEP)

    def test_error_chains_the_underlying_cause(self) -> None:
        """A ProtocolError keeps msgpack's or pydantic's exception as __cause__ for the log."""
        with pytest.raises(ProtocolError) as info:
            decode(b"\xc1")
        assert isinstance(info.value.__cause__, ValueError)


class TestMalformedJson:
    """Every class of bad text frame ends in ProtocolError with its own reason, and nothing else."""

    @pytest.mark.parametrize(
        ("text", "limits", "reason"),
        [pytest.param(text, limits, reason, id=case_id) for case_id, text, limits, reason in JSON_CASES],
    )
    def test_bad_text_is_refused_with_its_reason(
        self, text: str | bytes, limits: DecodeLimits, reason: ErrorReason
    ) -> None:
        """The viewer or agent is told the specific reason, and the close code that goes with it."""
        with pytest.raises(ProtocolError) as info:
            decode_json(text, limits)
        _assert_protocol_error(info.value, reason)


class TestOnlyProtocolErrorEscapes:
    """Whatever the bytes, decoding returns a message or raises ProtocolError: nothing else escapes."""

    @FUZZ
    @given(frame=st.binary(max_size=512), limits=st.sampled_from(ALL_LIMITS))
    def test_random_bytes(self, frame: bytes, limits: DecodeLimits) -> None:
        """Arbitrary bytes never raise anything but ProtocolError from decode."""
        _outcome(decode, frame, limits)

    @FUZZ
    @given(frame=st.binary(max_size=512), limits=st.sampled_from(ALL_LIMITS))
    def test_random_bytes_as_json(self, frame: bytes, limits: DecodeLimits) -> None:
        """Arbitrary bytes never raise anything but ProtocolError from decode_json."""
        _outcome(decode_json, frame, limits)

    @FUZZ
    @given(text=st.text(max_size=256), limits=st.sampled_from(ALL_LIMITS))
    def test_random_text_as_json(self, text: str, limits: DecodeLimits) -> None:
        """Arbitrary text, lone surrogates included, never raises anything but ProtocolError."""
        _outcome(decode_json, text, limits)

    @FUZZ
    @given(data=st.data(), message=messages)
    def test_bit_flips_of_a_valid_frame(self, data: st.DataObject, message: Any) -> None:
        """Flipping a few bits anywhere in a valid frame yields a message or ProtocolError."""
        frame = bytearray(encode(message))
        flips = data.draw(st.lists(st.integers(0, len(frame) * 8 - 1), min_size=1, max_size=4))
        for bit in flips:
            frame[bit // 8] ^= 1 << (bit % 8)
        outcome = _outcome(decode, bytes(frame), COLLECTOR_LIMITS)
        if not isinstance(outcome, ProtocolError):
            # Whatever got through is a real message: it re-encodes and decodes to itself.
            assert decode(encode(outcome), COLLECTOR_LIMITS) == outcome  # type: ignore[arg-type]  # a Message

    @FUZZ
    @given(data=st.data(), message=messages)
    def test_truncation_of_a_valid_frame(self, data: st.DataObject, message: Any) -> None:
        """Every strict prefix of a valid frame is refused as malformed, never half-decoded."""
        frame = encode(message)
        cut = data.draw(st.integers(0, len(frame) - 1))
        with pytest.raises(ProtocolError) as info:
            decode(frame[:cut], COLLECTOR_LIMITS)
        assert info.value.reason is ErrorReason.MALFORMED_MSGPACK

    @FUZZ
    @given(data=st.data(), first=messages, second=messages)
    def test_splice_of_two_valid_frames(self, data: st.DataObject, first: Any, second: Any) -> None:
        """The head of one valid frame glued to the tail of another yields a message or ProtocolError."""
        head, tail = encode(first), encode(second)
        spliced = head[: data.draw(st.integers(0, len(head)))] + tail[data.draw(st.integers(0, len(tail))) :]
        for limits in ALL_LIMITS:
            _outcome(decode, spliced, limits)

    @FUZZ
    @given(data=st.data(), message=messages)
    def test_mutations_of_a_valid_json_frame(self, data: st.DataObject, message: Any) -> None:
        """Overwriting, deleting or inserting characters in a valid text frame yields a message or ProtocolError."""
        text = encode_json(message)
        at = data.draw(st.integers(0, len(text)))
        junk = data.draw(st.text(max_size=4))
        drop = data.draw(st.integers(0, 4))
        mutated = text[:at] + junk + text[at + drop :]
        _outcome(decode_json, mutated, COLLECTOR_LIMITS)

    @settings(max_examples=200, deadline=None)
    @given(
        obj=st.recursive(
            st.none() | st.booleans() | INT64_OR_UINT64 | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8) | INT64_OR_UINT64 | st.binary(max_size=4), children, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_well_formed_msgpack_of_any_shape(self, obj: object) -> None:
        """Well-formed msgpack of the wrong shape, as a map or inside a message, yields only ProtocolError."""
        for frame in (_pack(obj), _pack({"type": "heartbeat", "seq": 1, "sampled_at": 1.0, "disks": obj})):
            for limits in ALL_LIMITS:
                _outcome(decode, frame, limits)


class TestCloseCodes:
    """Every reason maps to one close code, so the collector never has to guess."""

    def test_every_reason_has_a_close_code(self) -> None:
        """CLOSE_CODE_FOR_REASON covers every ErrorReason and maps each to a CloseCode."""
        assert set(CLOSE_CODE_FOR_REASON) == set(ErrorReason)
        assert all(isinstance(code, CloseCode) for code in CLOSE_CODE_FOR_REASON.values())

    @pytest.mark.parametrize("reason", list(ErrorReason))
    def test_protocol_error_carries_its_close_code(self, reason: ErrorReason) -> None:
        """A ProtocolError built from any reason reports that reason's close code and is a ValueError."""
        error = ProtocolError(reason, "detail")
        assert error.close_code is CLOSE_CODE_FOR_REASON[reason]
        assert isinstance(error, ValueError)
        assert str(error) == f"{reason.value}: detail"

    def test_reasons_fit_in_an_error_message_and_a_close_frame(self) -> None:
        """Each reason fits Error.reason (64 chars) and a close frame's 123-byte reason."""
        for reason in ErrorReason:
            assert Error(reason=reason.value, detail="").reason == reason.value
            assert len(reason.value.encode()) <= 123

    def test_size_problems_close_with_1009_and_bad_data_with_1008(self) -> None:
        """The codes a peer can act on: 1009 for too big, 1003 for a text frame, 1008 for bad content."""
        assert CLOSE_CODE_FOR_REASON[ErrorReason.FRAME_TOO_LARGE] == 1009
        assert CLOSE_CODE_FOR_REASON[ErrorReason.CONTAINER_TOO_LARGE] == 1009
        assert CLOSE_CODE_FOR_REASON[ErrorReason.TEXT_FRAME] == 1003
        for reason in (ErrorReason.MALFORMED_MSGPACK, ErrorReason.SCHEMA, ErrorReason.UNSUPPORTED_VERSION):
            assert CLOSE_CODE_FOR_REASON[reason] == 1008

    def test_close_codes_are_valid_websocket_codes(self) -> None:
        """Each code is one RFC 6455 section 7.4 lets an endpoint send (1000-1011 defined, 4000-4999 private)."""
        for code in CloseCode:
            assert code in {1000, 1001, 1003, 1008, 1009, 1011} or 4000 <= code <= 4999
