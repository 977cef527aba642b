"""The one exception type for bad peer input, and the websocket close codes.

Exception tree::

    ValueError
     └── ProtocolError        bad bytes or a bad message from a peer
                              (carries ``reason`` and ``close_code``)

Misuse of our own API raises ``RuntimeError``; nothing here covers it.

This module is not the place for transport errors (connection refused,
timeouts): those belong to the aiohttp shells.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Websocket close codes nodewatch sends, as listed in docs/protocol.md."""

    NORMAL = 1000  # the peer said goodbye (agent shutdown, viewer closed)
    GOING_AWAY = 1001  # the collector is shutting down
    UNSUPPORTED_DATA = 1003  # a text frame on a binary-only endpoint
    POLICY_VIOLATION = 1008  # malformed frame, schema violation, bad handshake
    MESSAGE_TOO_BIG = 1009  # a frame over the endpoint's size limit
    INTERNAL_ERROR = 1011  # a bug in the collector; the peer should retry
    NODE_KEY_REFUSED = 4403  # HTTP 403's meaning: the token is good, but not for this node id or key (docs/security.md)
    DUPLICATE_NODE = 4409  # another agent instance holds this node id
    SUBSCRIBER_TOO_SLOW = 4429  # a viewer fell behind the fan-out limit
    RATE_EXCEEDED = 4430  # HTTP 429's meaning (4429 is taken): frames, pings, hellos or new nodes too fast
    CAPACITY_REACHED = 4503  # the collector's node cap is reached


class ErrorReason(StrEnum):
    """Machine-readable reasons, sent in ``error`` messages and close frames."""

    FRAME_TOO_LARGE = "frame_too_large"
    MALFORMED_MSGPACK = "malformed_msgpack"
    MALFORMED_JSON = "malformed_json"
    TRAILING_BYTES = "trailing_bytes"
    CONTAINER_TOO_LARGE = "container_too_large"
    STRING_TOO_LONG = "string_too_long"
    NESTING_TOO_DEEP = "nesting_too_deep"
    BAD_MAP_KEY = "bad_map_key"
    INVALID_UTF8 = "invalid_utf8"
    NOT_A_MESSAGE = "not_a_message"
    UNKNOWN_TYPE = "unknown_type"
    SCHEMA = "schema"
    UNSUPPORTED_VERSION = "unsupported_version"
    TEXT_FRAME = "text_frame"
    UNEXPECTED_MESSAGE = "unexpected_message"
    HELLO_TIMEOUT = "hello_timeout"
    DUPLICATE_NODE = "duplicate_node"
    SUBSCRIBER_TOO_SLOW = "subscriber_too_slow"
    CAPACITY_REACHED = "capacity_reached"
    INTERNAL = "internal"
    # The trust model's reasons (docs/security.md, section 4).
    NODE_KEY_MISMATCH = "node_key_mismatch"  # the node id is bound to another node key
    NODE_KEY_REQUIRED = "node_key_required"  # a hello without a node key, for a node that has one
    RATE_EXCEEDED = "rate_exceeded"  # heartbeats, pings or hellos faster than the budget allows
    NEW_NODE_RATE_EXCEEDED = "new_node_rate_exceeded"  # too many new node ids from one agent token
    SEQ_OUT_OF_RANGE = "seq_out_of_range"  # a seq further ahead than elapsed time and backlog explain
    NODE_ID_NOT_ALLOWED = "node_id_not_allowed"  # the agent token is scoped to node-id patterns this id misses
    PARKED_BYTES_EXCEEDED = (
        "parked_bytes_exceeded"  # among the largest unfinished messages when all together were too many
    )


# Which close code each reason ends a connection with; one table so the
# collector, the tests and docs/protocol.md cannot drift apart.
CLOSE_CODE_FOR_REASON: dict[ErrorReason, CloseCode] = {
    ErrorReason.FRAME_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorReason.MALFORMED_MSGPACK: CloseCode.POLICY_VIOLATION,
    ErrorReason.MALFORMED_JSON: CloseCode.POLICY_VIOLATION,
    ErrorReason.TRAILING_BYTES: CloseCode.POLICY_VIOLATION,
    ErrorReason.CONTAINER_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorReason.STRING_TOO_LONG: CloseCode.MESSAGE_TOO_BIG,
    ErrorReason.NESTING_TOO_DEEP: CloseCode.POLICY_VIOLATION,
    ErrorReason.BAD_MAP_KEY: CloseCode.POLICY_VIOLATION,
    ErrorReason.INVALID_UTF8: CloseCode.POLICY_VIOLATION,
    ErrorReason.NOT_A_MESSAGE: CloseCode.POLICY_VIOLATION,
    ErrorReason.UNKNOWN_TYPE: CloseCode.POLICY_VIOLATION,
    ErrorReason.SCHEMA: CloseCode.POLICY_VIOLATION,
    ErrorReason.UNSUPPORTED_VERSION: CloseCode.POLICY_VIOLATION,
    ErrorReason.TEXT_FRAME: CloseCode.UNSUPPORTED_DATA,
    ErrorReason.UNEXPECTED_MESSAGE: CloseCode.POLICY_VIOLATION,
    ErrorReason.HELLO_TIMEOUT: CloseCode.POLICY_VIOLATION,
    ErrorReason.DUPLICATE_NODE: CloseCode.DUPLICATE_NODE,
    ErrorReason.SUBSCRIBER_TOO_SLOW: CloseCode.SUBSCRIBER_TOO_SLOW,
    ErrorReason.CAPACITY_REACHED: CloseCode.CAPACITY_REACHED,
    ErrorReason.INTERNAL: CloseCode.INTERNAL_ERROR,
    ErrorReason.NODE_KEY_MISMATCH: CloseCode.NODE_KEY_REFUSED,
    ErrorReason.NODE_KEY_REQUIRED: CloseCode.NODE_KEY_REFUSED,
    # HTTP 403's meaning too: the token is good, but not for this node id (docs/security.md, 3.1).
    ErrorReason.NODE_ID_NOT_ALLOWED: CloseCode.NODE_KEY_REFUSED,
    # The websocket layer's "too big", for unfinished messages across connections (collector.trust.parked).
    ErrorReason.PARKED_BYTES_EXCEEDED: CloseCode.MESSAGE_TOO_BIG,
    ErrorReason.RATE_EXCEEDED: CloseCode.RATE_EXCEEDED,
    ErrorReason.NEW_NODE_RATE_EXCEEDED: CloseCode.RATE_EXCEEDED,
    # A seq no clock can explain is a broken peer, like a schema violation.
    ErrorReason.SEQ_OUT_OF_RANGE: CloseCode.POLICY_VIOLATION,
}


class ProtocolError(ValueError):
    """A peer sent bytes or a message that breaks docs/protocol.md."""

    def __init__(self, reason: ErrorReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def close_code(self) -> CloseCode:
        """The websocket close code this error ends a connection with."""
        return CLOSE_CODE_FOR_REASON[self.reason]
