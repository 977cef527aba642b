"""What a peer does next after a connection ends: one table keyed by close code or HTTP status.

The agent, the viewer and docs/protocol.md (section 7, "Retry policy") all read
this table, and a test keeps the doc's table equal to it. Pure data and two
look-ups; no sleeping, sockets or randomness (each shell adds its own jitter).

Not here: the backoff arithmetic itself (``agent.backoff``, ``viewer.backoff``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from shared.errors import CloseCode

# The websocket layer's code for "closed with no close frame" (RFC 6455 section 7.1.5): never
# sent on the wire, reported locally when a TCP connection drops or is aborted.
ABNORMAL_CLOSURE = 1006
# A peer that broke the protocol or holds bad credentials will do the same again at once:
# wait long enough that a misconfigured fleet does not fill the collector's log.
LONG_DELAY_S = 60.0
# The collector holds a node id for a live instance for up to 10 intervals (docs/protocol.md,
# section 6); a retry sooner than this is refused again.
DUPLICATE_NODE_DELAY_S = 5.0
# A collector at capacity stays so for a while; fifteen seconds keeps 10,000 refused agents
# under ~700 attempts/s (one 503 costs the collector ~50 us).
CAPACITY_DELAY_S = 15.0
# A budget refusal (4430): a rate that waiting refills; ten seconds is more than any budget's refill
# time for one frame, hello or new node (docs/security.md, section 3.3).
RATE_EXCEEDED_DELAY_S = 10.0


class RetryAction(StrEnum):
    """How to retry: each shell maps these onto its own backoff."""

    BACKOFF = "backoff"  # exponential backoff with jitter from the shell's initial delay
    BACKOFF_LONG = "backoff_long"  # the peer itself is at fault: wait at least ``min_delay_s`` every time


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One row of the retry table: what to do, the least delay, and what it means for the user."""

    action: RetryAction
    min_delay_s: float
    meaning: str


_NORMAL = RetryPolicy(RetryAction.BACKOFF, 0.0, "an ordinary end: reconnect with backoff")

RETRY_BY_CLOSE_CODE: Mapping[int, RetryPolicy] = MappingProxyType(
    {
        int(CloseCode.NORMAL): _NORMAL,
        int(CloseCode.GOING_AWAY): RetryPolicy(
            RetryAction.BACKOFF, 0.0, "the collector is restarting: reconnect with backoff"
        ),
        int(CloseCode.UNSUPPORTED_DATA): RetryPolicy(
            RetryAction.BACKOFF_LONG, LONG_DELAY_S, "the client sent text frames: a client bug"
        ),
        int(CloseCode.POLICY_VIOLATION): RetryPolicy(
            RetryAction.BACKOFF_LONG, LONG_DELAY_S, "the client broke the protocol: a client bug"
        ),
        int(CloseCode.MESSAGE_TOO_BIG): RetryPolicy(
            RetryAction.BACKOFF_LONG, LONG_DELAY_S, "the client sent a frame over the limits: a client bug"
        ),
        ABNORMAL_CLOSURE: RetryPolicy(
            RetryAction.BACKOFF, 0.0, "the connection dropped without a close frame: reconnect with backoff"
        ),
        int(CloseCode.INTERNAL_ERROR): RetryPolicy(
            RetryAction.BACKOFF, 0.0, "a collector bug hit this connection only: reconnect with backoff"
        ),
        int(CloseCode.NODE_KEY_REFUSED): RetryPolicy(
            RetryAction.BACKOFF_LONG,
            LONG_DELAY_S,
            "the node id is bound to another node key, or outside the token's scope: an operator must act",
        ),
        int(CloseCode.RATE_EXCEEDED): RetryPolicy(
            RetryAction.BACKOFF, RATE_EXCEEDED_DELAY_S, "over a rate budget: retry no sooner than this, with backoff"
        ),
        int(CloseCode.DUPLICATE_NODE): RetryPolicy(
            RetryAction.BACKOFF,
            DUPLICATE_NODE_DELAY_S,
            "another agent holds this node id: retry no sooner than this, with backoff",
        ),
        int(CloseCode.SUBSCRIBER_TOO_SLOW): RetryPolicy(
            RetryAction.BACKOFF, 1.0, "the viewer fell behind: reconnect after a second, with backoff"
        ),
        int(CloseCode.CAPACITY_REACHED): RetryPolicy(
            RetryAction.BACKOFF, CAPACITY_DELAY_S, "the collector is full: retry no sooner than this, with backoff"
        ),
    }
)

RETRY_BY_HTTP_STATUS: Mapping[int, RetryPolicy] = MappingProxyType(
    {
        400: RetryPolicy(RetryAction.BACKOFF_LONG, LONG_DELAY_S, "a bad request: a client bug"),
        401: RetryPolicy(RetryAction.BACKOFF_LONG, LONG_DELAY_S, "missing or wrong token: fix the configuration"),
        403: RetryPolicy(RetryAction.BACKOFF_LONG, LONG_DELAY_S, "the token may not do this: fix the configuration"),
        404: RetryPolicy(
            RetryAction.BACKOFF_LONG, LONG_DELAY_S, "no such endpoint: the URL is not a nodewatch collector"
        ),
        # Also a refused peer's ingest cooldown (collector.trust.penalty: 1 s doubling to 30 s, in Retry-After).
        429: RetryPolicy(
            RetryAction.BACKOFF,
            1.0,
            "too many connections from this address, or a refused peer's cooldown: "
            "Retry-After, else this, with backoff",
        ),
        503: RetryPolicy(
            RetryAction.BACKOFF,
            CAPACITY_DELAY_S,
            "the collector is full or starting: Retry-After, else this, with backoff",
        ),
    }
)

_UNLISTED_HTTP = RetryPolicy(RetryAction.BACKOFF, 0.0, "an unexpected HTTP answer: reconnect with backoff")


def retry_for_close(code: int | None) -> RetryPolicy:
    """The policy after a websocket close with ``code`` (None: no close frame, as 1006)."""
    if code is None:
        return RETRY_BY_CLOSE_CODE[ABNORMAL_CLOSURE]
    return RETRY_BY_CLOSE_CODE.get(code, _NORMAL)


def retry_for_http(status: int) -> RetryPolicy:
    """The policy after the websocket upgrade was answered with HTTP ``status`` instead of 101."""
    return RETRY_BY_HTTP_STATUS.get(status, _UNLISTED_HTTP)
