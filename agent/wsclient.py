"""The client side of RFC 6455 as pure functions and one frame reader: no sockets, no TLS, no clock.

- ``upgrade_request`` builds the HTTP/1.1 upgrade (section 4.1);
- ``ResponseReader`` reads the answer: ``Upgraded`` (101 with the right
  ``Sec-WebSocket-Accept``) or ``Refused`` (any other status, with its headers,
  so a 503's ``Retry-After`` reaches the backoff);
- ``FrameReader`` turns bytes from the server into ``Message``, ``Ping``,
  ``Pong`` and ``CloseFrame`` events, reassembling fragments under a cap;
- ``encode_frame`` masks and frames what the client sends (section 5.3).

Bad bytes from the server raise exactly one type, ``WebSocketError``, carrying
the close code to answer with. Not here: what messages mean (``agent.session``)
or I/O (``agent.transport``).

Why not wsproto (the brief's first choice): importing it brings h11 and
``hashlib``, which maps OpenSSL's libcrypto: +6 MB RSS against a 20 MB budget
(bench/agent_overhead.py). The client half of RFC 6455 without extensions is
this module; SHA-1 for the accept check comes from CPython's built-in ``_sha1``.
"""

from __future__ import annotations

import base64
import importlib
from dataclasses import dataclass
from typing import Final

from agent.events import Refused, UpgradeAnswer, Upgraded

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
MAX_RESPONSE_HEAD_BYTES = 16 * 1024  # an upgrade answer is a few hundred bytes; a proxy's error page head fits too
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_CONTROL_PAYLOAD = 125  # section 5.5
PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG = 1002, 1007, 1009  # section 7.4.1
# Codes a peer may send (section 7.4): 1000-1003, 1007-1014, and 3000-4999 for libraries and applications.
_SENDABLE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(range(3000, 5000))


class WebSocketError(Exception):
    """The server broke RFC 6455; ``close_code`` is what the client answers with."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class HandshakeError(Exception):
    """The answer to the upgrade was not HTTP, or said 101 without being a websocket upgrade."""


def make_key(nonce: bytes) -> str:
    """``Sec-WebSocket-Key`` from 16 random bytes (section 4.1)."""
    if len(nonce) != 16:
        raise RuntimeError(f"expected a 16-byte nonce, got {len(nonce)} bytes")
    return base64.b64encode(nonce).decode("ascii")


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a real websocket server answers ``key`` with (section 4.2.2)."""
    return base64.b64encode(_sha1(key.encode("ascii") + GUID)).decode("ascii")


def _sha1(data: bytes) -> bytes:
    try:  # CPython's own SHA-1 (no stub, hence importlib): hashlib maps OpenSSL's libcrypto, ~4 MB RSS, for one hash
        module = importlib.import_module("_sha1")
    except ImportError:  # an interpreter built without it
        module = importlib.import_module("hashlib")
    digest: bytes = module.sha1(data).digest()
    return digest


def upgrade_request(host: str, target: str, key: str, headers: dict[str, str]) -> bytes:
    """The GET that asks for the upgrade; ``host`` is the Host header, ``target`` the path and query."""
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise RuntimeError(f"expected header lines without CR or LF, got {line!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseReader:
    """Collects the answer to the upgrade request until its head is complete."""

    def __init__(self, key: str) -> None:
        self._expected_accept = accept_for(key)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> UpgradeAnswer | None:
        """Add received bytes; None until the head (up to the blank line) has arrived."""
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_RESPONSE_HEAD_BYTES:
                raise HandshakeError(f"expected an HTTP response head within {MAX_RESPONSE_HEAD_BYTES} bytes")
            return None
        if end > MAX_RESPONSE_HEAD_BYTES:
            raise HandshakeError(f"expected an HTTP response head within {MAX_RESPONSE_HEAD_BYTES} bytes")
        head, rest = bytes(self._buffer[:end]), bytes(self._buffer[end + 4 :])
        status, phrase, headers = parse_head(head)
        if status != 101:
            return Refused(status, phrase, headers)
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in _tokens(headers.get("connection")):
            raise HandshakeError(f"expected Upgrade: websocket and Connection: upgrade, got {headers!r:.200}")
        if headers.get("sec-websocket-accept") != self._expected_accept:
            raise HandshakeError(f"expected Sec-WebSocket-Accept {self._expected_accept!r}, got {headers!r:.200}")
        if headers.get("sec-websocket-extensions"):  # section 9.1: we offered none, so none may be used
            raise HandshakeError(f"expected no extensions, got {headers['sec-websocket-extensions']!r:.100}")
        return Upgraded(rest)


def parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason phrase and headers (lower-case names; repeated ones joined by ", ") of a response head."""
    text = head.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isascii() and parts[1].isdigit()):
        raise HandshakeError(f"expected an HTTP/1.x status line, got {status_line[:100]!r}")
    status = int(parts[1])
    if not 100 <= status <= 599:
        raise HandshakeError(f"expected a status 100-599, got {status_line[:100]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HandshakeError(f"expected 'Name: value' header lines, got {line[:100]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return status, (parts[2] if len(parts) == 3 else "").strip(), headers


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",")}


def mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` repeated (section 5.3), as one big-integer operation."""
    size = len(data)
    if not size:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")


def encode_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final, masked frame; a client masks every frame it sends (section 5.1)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + key + mask(payload, key)


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, then at most 123 bytes of reason (a control payload is <= 125)."""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2]


@dataclass(frozen=True, slots=True)
class Payload:
    """What a data message, a ping and a pong carry: their bytes (the three events below)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Message(Payload):
    """A whole data message, fragments joined; ``text`` for opcode 1 (then ``data`` is valid UTF-8)."""

    text: bool


class Ping(Payload):
    """A ping's payload: one the server sent, or one to send (``agent.actions.SendPing``)."""

    __slots__ = ()


class Pong(Payload):
    """A pong's payload: one the server sent, or one to send (``agent.actions.SendPong``)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CloseFrame:
    """The server's close; ``code`` None when it sent an empty close payload (section 7.1.5: 1005)."""

    code: int | None
    reason: str


Event = Message | Ping | Pong | CloseFrame


class FrameReader:
    """Parses the server's frames as bytes arrive; holds at most one frame and one message under assembly."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.closed = False  # a close frame arrived: nothing after it is read (section 5.5.1)
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_bytes = 0
        self._fragment_text = False
        self._in_message = False

    def feed(self, data: bytes) -> list[Event]:
        """Add bytes; return the complete events in them, or raise ``WebSocketError``."""
        if self.closed:
            return []
        self._buffer += data
        events: list[Event] = []
        while not self.closed:
            complete, event = self._next_frame()
            if not complete:
                break
            if event is not None:
                events.append(event)
        return events

    def _next_frame(self) -> tuple[bool, Event | None]:
        """(False, None) when more bytes are needed; else (True, the event, or None for a non-final fragment)."""
        buf = self._buffer
        if len(buf) < 2:
            return False, None
        first, second = buf[0], buf[1]
        fin, opcode, size, offset = bool(first & 0x80), first & 0x0F, second & 0x7F, 2
        if first & 0x70:
            raise WebSocketError(PROTOCOL_ERROR, "expected no RSV bits (no extension was agreed)")
        if second & 0x80:
            raise WebSocketError(PROTOCOL_ERROR, "expected unmasked frames from the server")
        if size >= 126:
            width = 2 if size == 126 else 8
            if len(buf) < 2 + width:
                return False, None
            size, offset = int.from_bytes(buf[2 : 2 + width], "big"), 2 + width
        if opcode >= 0x8:
            if opcode not in {CLOSE, PING, PONG}:
                raise WebSocketError(PROTOCOL_ERROR, f"expected a known opcode, got {opcode:#x}")
            if not fin or size > MAX_CONTROL_PAYLOAD:
                raise WebSocketError(PROTOCOL_ERROR, "expected a final control frame of at most 125 bytes")
        elif opcode not in {CONTINUATION, TEXT, BINARY}:
            raise WebSocketError(PROTOCOL_ERROR, f"expected a known opcode, got {opcode:#x}")
        elif self._fragment_bytes + size > self.max_message_bytes:  # refused before its payload is buffered
            raise WebSocketError(MESSAGE_TOO_BIG, f"expected messages of at most {self.max_message_bytes} bytes")
        if len(buf) < offset + size:
            return False, None
        payload = bytes(buf[offset : offset + size])
        del buf[: offset + size]
        return True, self._event(opcode, fin, payload)

    def _event(self, opcode: int, fin: bool, payload: bytes) -> Event | None:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        if opcode == CLOSE:
            self.closed = True
            return _close_frame(payload)
        if (opcode == CONTINUATION) != self._in_message:
            raise WebSocketError(PROTOCOL_ERROR, "expected a continuation only inside a fragmented message")
        if opcode != CONTINUATION:
            self._fragment_text = opcode == TEXT
        self._fragments.append(payload)
        self._fragment_bytes += len(payload)
        self._in_message = not fin
        if not fin:
            return None
        data, text = b"".join(self._fragments), self._fragment_text
        self._fragments, self._fragment_bytes = [], 0
        if text:
            _utf8(data)
        return Message(data, text)


def _close_frame(payload: bytes) -> CloseFrame:
    if not payload:
        return CloseFrame(None, "")
    if len(payload) == 1:
        raise WebSocketError(PROTOCOL_ERROR, "expected a close payload of 0 or at least 2 bytes")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CODES:
        raise WebSocketError(PROTOCOL_ERROR, f"expected a close code a peer may send, got {code}")
    return CloseFrame(code, _utf8(payload[2:]))


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebSocketError(INVALID_DATA, f"expected UTF-8 text, got {data[:40]!r}") from exc
