"""The close codes and reasons the trust parts propose, and ``Refusal``, the value that carries one.

Proposed for ``shared/errors.py`` (``CloseCode``, ``ErrorReason`` and
``CLOSE_CODE_FOR_REASON``) and docs/protocol.md section 7; they live here until
they are wired in, and ``tests/collector/trust`` checks the table has no
clash with the codes ``shared.errors`` already sends. Not here: the retry
policy an agent applies to each code (``shared.retry`` once wired).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType


class TrustCloseCode(IntEnum):
    """New websocket close codes (RFC 6455 section 7.4.2: 4000-4999 are ours to define)."""

    # HTTP 403's meaning: the credential is valid for the fleet but not for this node id.
    NODE_KEY_REFUSED = 4403
    # HTTP 429's meaning; 4429 is taken by subscriber_too_slow, so the next free code.
    RATE_EXCEEDED = 4430


class TrustReason(StrEnum):
    """Machine-readable reasons, for ``Error.reason`` and the close frame's text."""

    NODE_KEY_MISMATCH = "node_key_mismatch"  # the node id is bound to another node key
    NODE_KEY_REQUIRED = "node_key_required"  # a hello without a node key, for a node that has one
    RATE_EXCEEDED = "rate_exceeded"  # frames, pings or hellos faster than the budget allows
    NEW_NODE_RATE_EXCEEDED = "new_node_rate_exceeded"  # too many new node ids from one credential
    SEQ_OUT_OF_RANGE = "seq_out_of_range"  # a seq further ahead than elapsed time and backlog explain
    CAPACITY_REACHED = "capacity_reached"  # the same value as shared.errors' reason: a full table


# shared.errors' code for ``capacity_reached`` and for schema-level protocol violations, repeated so this
# module needs no import of the codec; the test checks both against shared.errors.
CAPACITY_REACHED_CODE = 4503
POLICY_VIOLATION_CODE = 1008

CLOSE_CODE_FOR_TRUST_REASON = MappingProxyType(
    {
        TrustReason.NODE_KEY_MISMATCH: int(TrustCloseCode.NODE_KEY_REFUSED),
        TrustReason.NODE_KEY_REQUIRED: int(TrustCloseCode.NODE_KEY_REFUSED),
        TrustReason.RATE_EXCEEDED: int(TrustCloseCode.RATE_EXCEEDED),
        TrustReason.NEW_NODE_RATE_EXCEEDED: int(TrustCloseCode.RATE_EXCEEDED),
        # A seq no clock can explain is a broken peer, like a schema violation: 1008.
        TrustReason.SEQ_OUT_OF_RANGE: POLICY_VIOLATION_CODE,
        TrustReason.CAPACITY_REACHED: CAPACITY_REACHED_CODE,
    }
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
