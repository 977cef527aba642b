"""The trust parts' reasons as a subset of ``shared.errors``, and ``Refusal``, the value that carries one.

The codes and reasons themselves live in ``shared.errors`` (``CloseCode``,
``ErrorReason``, ``CLOSE_CODE_FOR_REASON``) and docs/protocol.md section 7;
``TrustReason`` names the ones the pure trust parts may return, so their
signatures say which refusals they can make. ``Refusal.error()`` is the
``ProtocolError`` the ingest session closes with. Not here: the retry policy an
agent applies to each code (``shared.retry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from shared.errors import CLOSE_CODE_FOR_REASON, CloseCode, ErrorReason, ProtocolError


class TrustCloseCode(IntEnum):
    """New websocket close codes (RFC 6455 section 7.4.2: 4000-4999 are ours to define)."""

    # HTTP 403's meaning: the credential is valid for the fleet but not for this node id.
    NODE_KEY_REFUSED = int(CloseCode.NODE_KEY_REFUSED)
    # HTTP 429's meaning; 4429 is taken by subscriber_too_slow, so the next free code.
    RATE_EXCEEDED = int(CloseCode.RATE_EXCEEDED)


class TrustReason(StrEnum):
    """Machine-readable reasons, for ``Error.reason`` and the close frame's text."""

    NODE_KEY_MISMATCH = "node_key_mismatch"  # the node id is bound to another node key
    NODE_KEY_REQUIRED = "node_key_required"  # a hello without a node key, for a node that has one
    RATE_EXCEEDED = "rate_exceeded"  # frames, pings or hellos faster than the budget allows
    NEW_NODE_RATE_EXCEEDED = "new_node_rate_exceeded"  # too many new node ids from one credential
    SEQ_OUT_OF_RANGE = "seq_out_of_range"  # a seq further ahead than elapsed time and backlog explain
    CAPACITY_REACHED = "capacity_reached"  # the same value as shared.errors' reason: a full table
    NODE_ID_NOT_ALLOWED = "node_id_not_allowed"  # the agent token's node-id patterns do not match


CAPACITY_REACHED_CODE = int(CloseCode.CAPACITY_REACHED)
POLICY_VIOLATION_CODE = int(CloseCode.POLICY_VIOLATION)

CLOSE_CODE_FOR_TRUST_REASON = MappingProxyType(
    {reason: int(CLOSE_CODE_FOR_REASON[ErrorReason(reason.value)]) for reason in TrustReason}
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """End this connection: send ``Error(reason, detail)``, then close with ``code`` and ``reason``.

    ``retry_after_s`` is a hint for the detail text and a 429/503 ``Retry-After``; None when waiting
    does not help (an operator must act).
    """

    reason: TrustReason
    detail: str
    retry_after_s: float | None = None

    @property
    def code(self) -> int:
        """The close code this refusal ends a connection with."""
        return CLOSE_CODE_FOR_TRUST_REASON[self.reason]

    def error(self) -> ProtocolError:
        """The ``ProtocolError`` an ingest session refuses the connection with."""
        return ProtocolError(ErrorReason(self.reason.value), self.detail)
