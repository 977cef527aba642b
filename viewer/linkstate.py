"""What the viewer's link tells the window: its phase, the problem in words, and when it retries.

Also the pure parts of connecting: the subscribe URL for a collector URL, the words for
each way a connection fails (connection refused, name not resolved, not a nodewatch
collector, TLS certificate not trusted, auth failed), and the least retry delay, taken
from ``shared.retry`` (one table for every peer).

Not here: sockets, threads or Qt (``viewer.worker``, ``viewer.link``).
"""

from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from shared.codec import COLLECTOR_LIMITS
from shared.errors import CloseCode
from shared.retry import RetryAction, retry_for_close, retry_for_http

SUBSCRIBE_PATH: Final = "/api/v1/subscribe"
# ~10 UI frames per second: smooth enough for numbers, and what the collector batches at anyway.
FLUSH_INTERVAL_S: Final = 0.1
# Ping every 10 s (aiohttp's heartbeat=): a dead collector behind a NAT is noticed within ~20 s.
HEARTBEAT_S: Final = 10.0
# A collector that accepts TCP but never answers the upgrade is as good as down.
CONNECT_TIMEOUT_S: Final = 10.0
# Peer detail strings are truncated in log lines and in the UI to keep one line per error.
DETAIL_CHARS: Final = 200


class Phase(StrEnum):
    """What the connection indicator shows."""

    CONNECTING = "connecting"  # never connected yet
    CONNECTED = "connected"  # snapshot received, updates flowing
    RECONNECTING = "reconnecting"  # lost; retrying
    AUTH_FAILED = "auth_failed"  # HTTP 401: retried slowly, the token must change
    STOPPED = "stopped"  # stop() was called


@dataclass(frozen=True, slots=True)
class LinkState:
    """A phase, what went wrong in words (``detail``), and the next attempt if one is scheduled."""

    phase: Phase
    detail: str = ""
    retry_at: float | None = None  # time.monotonic() instant


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Where to subscribe and how; built by ``viewer.cli`` from argv and environment."""

    collector_url: str
    token: str | None = None
    flush_interval_s: float = FLUSH_INTERVAL_S
    heartbeat_s: float = HEARTBEAT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    # The largest frame accepted; a bigger one ends the session with a visible message.
    max_frame_bytes: int = COLLECTOR_LIMITS.max_frame_bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one connection attempt or session ended: words for people, and the least delay before the next."""

    words: str
    min_delay_s: float = 0.0
    auth: bool = False  # HTTP 401: the AUTH_FAILED phase


def subscribe_url(collector_url: str) -> str:
    """Return the ``ws(s)://HOST:PORT/api/v1/subscribe`` URL for an ``http(s)://HOST:PORT`` collector URL.

    ``ws://``/``wss://`` are accepted too. Raises ValueError naming what is accepted.
    """
    parts = urlsplit(collector_url.strip())
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes:
        raise ValueError(f"expected an http:// or https:// URL, got {collector_url!r}")
    if not parts.hostname:
        raise ValueError(f"expected a host in the URL, got {collector_url!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"expected a port number in 1-65535, got {collector_url!r}") from exc
    if parts.query or parts.fragment or parts.path not in {"", "/"}:
        raise ValueError(f"expected only scheme://host:port, got {collector_url!r}")
    return urlunsplit((schemes[parts.scheme], parts.netloc, SUBSCRIBE_PATH, "", ""))


def _least_delay_s(action: RetryAction, min_delay_s: float) -> float:
    return min_delay_s if action is RetryAction.BACKOFF_LONG or min_delay_s > 0 else 0.0


def handshake_failure(status: int, message: str, *, has_token: bool) -> Failure:
    """The upgrade was answered with HTTP ``status`` instead of 101."""
    policy = retry_for_http(status)
    delay_s = _least_delay_s(policy.action, policy.min_delay_s)
    if status == 401:  # HTTP Unauthorized, answered before the upgrade
        words = (
            "auth failed: the collector rejected the viewer token (HTTP 401)"
            if has_token
            else "auth failed: the collector requires a viewer token (HTTP 401): pass --token or set NODEWATCH_TOKEN"
        )
        return Failure(words, delay_s, auth=True)
    if status == 404:  # HTTP Not Found
        return Failure(f"not a nodewatch collector (HTTP 404 on {SUBSCRIBE_PATH})", delay_s)
    if 200 <= status < 300:  # an HTTP server that does not speak websockets here
        return Failure(f"not a nodewatch collector (HTTP {status} without a websocket upgrade)", delay_s)
    return Failure(f"HTTP {status} {message[:DETAIL_CHARS]}: {policy.meaning}", delay_s)


def connect_failure(exc: BaseException, host: str) -> Failure:  # noqa: PLR0911 - one branch per kind
    """A connection attempt failed before any HTTP answer."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure(f"TLS certificate not trusted: {exc}"[:DETAIL_CHARS])
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Failure(f"name not resolved: {host!r}")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return Failure(f"TLS handshake failed: {exc}"[:DETAIL_CHARS])
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return Failure(f"no answer from {host!r} within {CONNECT_TIMEOUT_S:g} s")
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(os_error, OSError) and os_error.errno == errno.ECONNREFUSED:
        return Failure(f"connection refused by {host!r}: is the collector running on that port?")
    if isinstance(os_error, OSError) and os_error.errno in {errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return Failure(f"no route to {host!r}")
    return Failure(f"cannot connect: {exc}"[:DETAIL_CHARS])


def close_failure(code: int | None, exc: BaseException | None) -> Failure:
    """A session that had connected ended, with close ``code`` (None: no close frame) or ``exc``."""
    if isinstance(exc, aiohttp.WebSocketError) and exc.code == CloseCode.MESSAGE_TOO_BIG:
        return Failure(f"the collector sent a message over the viewer's frame limit: {exc}"[:DETAIL_CHARS])
    policy = retry_for_close(code)
    delay_s = _least_delay_s(policy.action, policy.min_delay_s)
    if exc is not None:
        return Failure(f"connection lost: {exc}"[:DETAIL_CHARS], delay_s)
    if code is None:
        return Failure("connection lost", delay_s)
    try:
        name = CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = "unknown"
    return Failure(f"closed by collector: {code} ({name}): {policy.meaning}", delay_s)
