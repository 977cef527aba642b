"""One websocket connection to the collector over a non-blocking socket: dial, TLS, upgrade, frames, close.

A ``Link`` is driven by its owner's selector loop (``agent.runner``): the loop
asks ``interest()``, waits, and calls ``advance(now, ready)``, which does what
the socket allows and returns what happened as values (``agent.events``:
``Opened``, ``Failed``, ``Refused``, ``Lost``; ``agent.wsclient`` frame events). Nothing here
blocks: a stop is seen within one loop turn even while dialling. Not here:
what frames mean (``agent.session``), retries (``agent.pusher``).

What the collector sends is budgeted (``agent.inbound``); a link that refuses
its bytes (bad frames, over budget) closes and reads nothing more (RFC 6455 7.1.7).

``ssl`` is imported only for a ``wss://`` URL (it costs ~1.5 MB RSS of the 20 MB
budget): the system CA store, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured by
OpenSSL, the host name checked, TLS 1.2 at least. Names are resolved in a
worker thread (``getaddrinfo`` blocks); the caller passes the future in.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from enum import Enum
from typing import Any
from urllib.parse import SplitResult

from agent.events import Failed, Lost, Opened, Refused, Upgraded
from agent.inbound import InboundBudget, parse
from agent.worker import Job
from agent.wsclient import (
    CLOSE,
    CloseFrame,
    Event,
    FrameReader,
    HandshakeError,
    ResponseReader,
    close_payload,
    encode_frame,
    make_key,
    upgrade_request,
)
from shared.errors import CloseCode

READ, WRITE = 1, 2  # selectors.EVENT_READ, EVENT_WRITE
RECV_BYTES = 64 * 1024
MAX_READ_PER_TURN = 1024 * 1024  # a flooding peer gets one megabyte per loop turn, then the timers run


LinkEvent = Opened | Failed | Refused | Lost | Event


class Phase(Enum):
    RESOLVING = "resolving"
    CONNECTING = "connecting"
    TLS = "tls"
    UPGRADING = "upgrading"
    OPEN = "open"
    CLOSING = "closing"  # our close is queued or sent; waiting for the server's, at most close_timeout_s
    DONE = "done"


def _would_block(exc: OSError) -> bool:
    """A non-blocking call found nothing to do; for TLS, OpenSSL wants a read or write first."""
    if isinstance(exc, BlockingIOError | InterruptedError):
        return True
    ssl = sys.modules.get("ssl")  # loaded only for wss://; without it no exception can be an SSL one
    return ssl is not None and isinstance(exc, ssl.SSLWantReadError | ssl.SSLWantWriteError)


def tls_context() -> Any:
    """The client context for ``wss://``: verified against the system store (or SSL_CERT_FILE), TLS >= 1.2."""
    import ssl  # noqa: PLC0415 - loaded only for wss://: ~1.5 MB RSS a ws:// agent does not pay

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Link:
    """One attempt and, if it opens, one websocket; ``advance`` is the only entry point for I/O."""

    def __init__(
        self,
        url: SplitResult,
        headers: dict[str, str],
        addresses: Job[list[tuple[Any, ...]]],
        *,
        now: float,
        connect_timeout_s: float,
        close_timeout_s: float,
        max_message_bytes: int,
        budget: InboundBudget | None = None,
    ) -> None:
        self.phase = Phase.RESOLVING
        self.deadline = now + connect_timeout_s
        self._url = url
        self._headers = headers
        self._addresses = addresses
        self._candidates: list[tuple[Any, ...]] = []
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._sock: Any = None  # socket.socket, or ssl.SSLSocket for wss://
        self._tls_wants = READ
        self._out = bytearray()
        self._key = make_key(os.urandom(16))
        self._response = ResponseReader(self._key)
        self._frames = FrameReader(max_message_bytes)
        self._last_error = "no address"
        self._budget = budget if budget is not None else InboundBudget()
        self._listening = True  # False once we close for the peer's fault: nothing more is read
        self.more_to_read = False  # a read cap was hit, or TLS holds decrypted bytes: call advance again at once

    def fileno(self) -> int | None:
        return None if self._sock is None else int(self._sock.fileno())

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the server and not yet taken by the kernel."""
        return len(self._out)

    def interest(self) -> int:
        """What to wait for on ``fileno()``: READ, WRITE, both, or 0."""
        if self._sock is None or self.phase is Phase.DONE:
            return 0
        if self.phase is Phase.CONNECTING:
            return WRITE
        if self.phase is Phase.TLS:
            return self._tls_wants
        return (READ if self._listening else 0) | (WRITE if self._out else 0)

    def send(self, opcode: int, payload: bytes) -> None:
        """Queue one frame (sent by the next ``advance``); frames after our close are dropped (section 5.5.1)."""
        if self.phase is Phase.OPEN:
            self._out += encode_frame(opcode, payload, os.urandom(4))
            self._budget.sent(opcode)

    def close(self, code: int, reason: str, now: float) -> None:
        """Queue our close frame; the link ends when the server answers, at EOF, or after the close timeout."""
        if code != CloseCode.NORMAL:  # we fail the connection (RFC 6455 section 7.1.7): send the close, read no more
            self._listening = self.more_to_read = False
        if self.phase is Phase.OPEN:
            self._out += encode_frame(CLOSE, close_payload(code, reason), os.urandom(4))
            self.phase, self.deadline = Phase.CLOSING, now + self._close_timeout_s
        elif self.phase is not Phase.CLOSING:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now, without a close handshake."""
        self.phase = Phase.DONE
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._out.clear()

    def advance(self, now: float, ready: int) -> list[LinkEvent]:
        """Do what the socket allows (``ready`` is the selector's mask, 0 for a timer) and report what happened."""
        try:
            return self._advance(now, ready)
        except OSError as exc:  # ssl.SSLError is an OSError: a bad certificate, a TLS version refused, a reset
            return self._fail(f"{exc!r:.200}")

    def _advance(self, now: float, ready: int) -> list[LinkEvent]:
        if self.phase is Phase.RESOLVING:
            return self._resolved(now)
        if self.phase is Phase.CONNECTING:
            return self._connected(now, ready)
        if self.phase is Phase.TLS:
            return self._secure(now)
        return [] if self.phase is Phase.DONE else self._exchange(now, ready)

    def _resolved(self, now: float) -> list[LinkEvent]:
        if not self._addresses.done():
            return self._timeout(now)
        try:
            self._candidates = list(self._addresses.result())
        except OSError as exc:
            return self._fail(f"cannot resolve {self._url.hostname!r}: {exc!r:.150}")
        return self._dial_next(now)

    def _connected(self, now: float, ready: int) -> list[LinkEvent]:
        if not ready & WRITE:
            return self._timeout(now)
        error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self._last_error = f"{ConnectionRefusedError(error, os.strerror(error))!r}"
            return self._dial_next(now)
        return self._secure(now) if self._url.scheme == "wss" else self._upgrade(now)

    def _dial_next(self, now: float) -> list[LinkEvent]:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if not self._candidates:
            return self._fail(self._last_error)
        family, kind, proto, _, address = self._candidates.pop(0)
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.phase = Phase.CONNECTING
        error = self._sock.connect_ex(address)
        if error not in {0, errno.EINPROGRESS}:
            self._last_error = f"{OSError(error, os.strerror(error))!r}"
            return self._dial_next(now)
        return []

    def _secure(self, now: float) -> list[LinkEvent]:
        if self.phase is Phase.CONNECTING:
            context = tls_context()
            self._sock = context.wrap_socket(
                self._sock, server_hostname=self._url.hostname, do_handshake_on_connect=False
            )
            self.phase = Phase.TLS
        import ssl  # noqa: PLC0415 - already loaded by tls_context(): wss:// only

        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_wants = READ
            return self._timeout(now)
        except ssl.SSLWantWriteError:
            self._tls_wants = WRITE
            return self._timeout(now)
        return self._upgrade(now)

    def _upgrade(self, now: float) -> list[LinkEvent]:
        url = self._url
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._out += upgrade_request(url.netloc.rpartition("@")[2], target, self._key, self._headers)
        self.phase = Phase.UPGRADING
        return self._exchange(now, WRITE)

    def _exchange(self, now: float, ready: int) -> list[LinkEvent]:
        """Write what is queued, read what arrived, and turn it into events."""
        if self._out:
            self._flush()
        reading = (ready & READ or self.more_to_read) and self._listening
        data, eof = self._read() if reading else (b"", False)
        events: list[LinkEvent] = []
        if data and self.phase is Phase.UPGRADING:
            answer = self._answer(data)
            if not isinstance(answer, Upgraded):
                return answer
            self.phase, data = Phase.OPEN, answer.rest
            events.append(Opened())
        if data and self.phase in {Phase.OPEN, Phase.CLOSING}:
            frames, refused = self._parse(data, now)
            events += frames
            if refused:
                return events
        if any(isinstance(event, CloseFrame) for event in events) and self.phase is Phase.CLOSING:
            self.abort()  # our close was answered: the handshake is complete
        elif eof:
            was_open = self.phase is Phase.OPEN
            self.abort()
            if was_open:
                events.append(Lost("connection closed by the collector without a close frame"))
            elif not any(isinstance(event, Opened) for event in events):
                return self._fail("connection closed during the upgrade")
        if self.phase in {Phase.UPGRADING, Phase.CLOSING}:
            events += self._timeout(now)
        return events

    def _parse(self, data: bytes, now: float) -> tuple[list[LinkEvent], bool]:
        """The server's frames in ``data`` within the budget; True when the link refused them and closed."""
        kept, refusal = parse(self._frames, self._budget, data, now)
        if refusal is None:
            return list(kept), False
        self.close(refusal.code, refusal.reason, now)
        return [*kept, Lost(f"closed it {refusal.code}: {refusal.why}", close_code=refusal.code)], True

    def _answer(self, data: bytes) -> Upgraded | list[LinkEvent]:
        """The server's answer to the upgrade: accepted (with the bytes after it), refused, or not there yet."""
        try:
            answer = self._response.feed(data)
        except HandshakeError as exc:
            return self._fail(f"not a websocket upgrade: {exc}")
        if isinstance(answer, Refused):
            self.abort()
            return [answer]
        return [] if answer is None else answer

    def answer_close(self, frame: CloseFrame, now: float) -> None:
        """Echo the server's close (section 5.5.1), then drop the connection once it is sent."""
        self.close(frame.code if frame.code is not None else 1000, "", now)
        self.deadline = now  # nothing more to wait for: the next advance closes after one flush

    def flush(self) -> None:
        """Hand queued bytes to the kernel now; a failure shows at the next ``advance``."""
        if self._out and self._sock is not None and self.phase is not Phase.CONNECTING:
            try:
                self._flush()
            except OSError:
                return

    def _flush(self) -> None:
        try:
            sent = self._sock.send(self._out[: RECV_BYTES * 4])
        except OSError as exc:
            if _would_block(exc):
                return
            raise
        del self._out[:sent]

    def _read(self) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        total, eof = 0, False
        self.more_to_read = False
        while total < MAX_READ_PER_TURN:
            try:
                chunk = self._sock.recv(RECV_BYTES)
            except OSError as exc:
                if _would_block(exc):
                    break
                raise
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            total += len(chunk)
        else:
            self.more_to_read = True
        pending = getattr(self._sock, "pending", None)
        if pending is not None and not eof and pending() > 0:
            self.more_to_read = True
        return b"".join(chunks), eof

    def _timeout(self, now: float) -> list[LinkEvent]:
        if now < self.deadline:
            return []
        if self.phase is Phase.CLOSING:
            if self._out and self._sock is not None:
                self._flush()
            self.abort()
            return []
        return self._fail(f"no answer within {self._connect_timeout_s:g} s")

    def _fail(self, why: str) -> list[LinkEvent]:
        phase = self.phase
        self.abort()
        if phase is Phase.CLOSING:
            return []
        return [Lost(why)] if phase is Phase.OPEN else [Failed(why)]
