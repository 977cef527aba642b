"""The agent's RFC 6455 client half, pure: the upgrade answer (101 or a refusal with Retry-After) and frames."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.events import Refused, Upgraded
from agent.wsclient import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    CloseFrame,
    FrameReader,
    HandshakeError,
    Message,
    Ping,
    ResponseReader,
    WebSocketError,
    accept_for,
    encode_frame,
    make_key,
    mask,
    upgrade_request,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example key


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as a server sends it: unmasked."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def switching(accept: str = accept_for(KEY), extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    ).encode()


class TestHandshake:
    def test_accept_matches_the_rfc_example(self) -> None:
        """The accept value for the RFC's sample key is the RFC's: a real server will agree with us."""
        assert accept_for(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def test_request_carries_the_key_version_and_token(self) -> None:
        """The upgrade GET names the path, the host, version 13 and the bearer token."""
        request = upgrade_request("c:8765", "/api/v1/ingest", KEY, {"Authorization": "Bearer t"}).decode()
        assert request.startswith("GET /api/v1/ingest HTTP/1.1\r\nHost: c:8765\r\n")
        assert f"Sec-WebSocket-Key: {KEY}\r\n" in request
        assert "Sec-WebSocket-Version: 13\r\n" in request
        assert request.endswith("Authorization: Bearer t\r\n\r\n")

    def test_a_header_with_a_newline_is_refused(self) -> None:
        """A token with CR/LF cannot smuggle a header into the request."""
        with pytest.raises(RuntimeError):
            upgrade_request("c", "/", KEY, {"Authorization": "Bearer t\r\nX-Evil: 1"})

    def test_101_in_pieces_gives_upgraded_with_the_bytes_after_it(self) -> None:
        """The head may arrive in several reads; frames sent right after it are kept."""
        reader = ResponseReader(KEY)
        data = switching() + server_frame(BINARY, b"ack")
        assert reader.feed(data[:10]) is None
        answer = reader.feed(data[10:])
        assert answer == Upgraded(server_frame(BINARY, b"ack"))

    @pytest.mark.parametrize(
        ("head", "status", "phrase", "retry_after"),
        [
            (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n{}", 503, "Service Unavailable", "5"),
            (b"HTTP/1.1 429 Too Many Requests\r\nretry-after:  7 \r\n\r\n", 429, "Too Many Requests", "7"),
            (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n", 401, "Unauthorized", None),
            (b"HTTP/1.0 502\r\n\r\n", 502, "", None),
        ],
    )  # fmt: skip
    def test_a_refusal_keeps_status_phrase_and_retry_after(
        self, head: bytes, status: int, phrase: str, retry_after: str | None
    ) -> None:
        """A refused upgrade reports its status and phrase, and Retry-After in any case, for the backoff."""
        answer = ResponseReader(KEY).feed(head)
        assert isinstance(answer, Refused)
        assert (answer.status, answer.phrase, answer.headers.get("retry-after")) == (status, phrase, retry_after)

    @pytest.mark.parametrize(
        "head",
        [
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 abc Nope\r\n\r\n",
            b"HTTP/1.1 999 Nope\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            switching(accept="wrong="),
            switching().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
            switching(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        ],
    )
    def test_anything_but_a_proper_answer_is_a_handshake_error(self, head: bytes) -> None:
        """Not HTTP, a bad status, a bad header line, a wrong accept or an extension we never offered: refused."""
        with pytest.raises(HandshakeError):
            ResponseReader(KEY).feed(head)

    def test_an_endless_head_is_bounded(self) -> None:
        """A peer that never ends its head is refused once it passes 16 KiB, not buffered forever."""
        reader = ResponseReader(KEY)
        assert reader.feed(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: a\r\n" * 1600) is None
        with pytest.raises(HandshakeError):
            reader.feed(b"X-Pad: " + b"a" * 1000 + b"\r\n")

    @given(st.binary(max_size=300))
    def test_any_bytes_give_an_answer_or_a_handshake_error(self, data: bytes) -> None:
        """Whatever a peer answers, the reader returns a value or raises HandshakeError, nothing else."""
        with contextlib.suppress(HandshakeError):
            ResponseReader(KEY).feed(data)


class TestFrames:
    def test_client_frames_are_masked_and_round_trip(self) -> None:
        """What the agent sends is masked (section 5.3) and unmasks to the payload, at each length form."""
        for size in (0, 5, 125, 126, 65535, 65536):
            payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
            frame = encode_frame(BINARY, payload, b"\x01\x02\x03\x04")
            assert frame[0] == 0x80 | BINARY
            assert frame[1] & 0x80
            assert mask(frame[-size:] if size else b"", b"\x01\x02\x03\x04") == payload

    def test_fragments_are_joined_and_control_frames_pass_between_them(self) -> None:
        """A message in three fragments with a ping in the middle gives the ping, then the whole message."""
        reader = FrameReader(1024)
        data = (
            server_frame(BINARY, b"ab", fin=False)
            + server_frame(PING, b"p")
            + server_frame(CONTINUATION, b"cd", fin=False)
            + server_frame(CONTINUATION, b"ef")
        )
        events = [event for i in range(len(data)) for event in reader.feed(data[i : i + 1])]
        assert events == [Ping(b"p"), Message(b"abcdef", text=False)]

    def test_close_frame_and_nothing_after_it(self) -> None:
        """A close gives its code and reason; bytes after it are ignored (section 5.5.1)."""
        reader = FrameReader(1024)
        events = reader.feed(server_frame(CLOSE, (1001).to_bytes(2, "big") + b"bye") + server_frame(BINARY, b"x"))
        assert events == [CloseFrame(1001, "bye")]
        assert reader.feed(server_frame(BINARY, b"y")) == []

    def test_an_empty_close_has_no_code(self) -> None:
        """A close without a payload is reported with code None, as 1005 means (section 7.1.5)."""
        assert FrameReader(10).feed(server_frame(CLOSE, b"")) == [CloseFrame(None, "")]

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (server_frame(BINARY, b"x" * 65) , 1009),  # over the cap in one frame
            (server_frame(BINARY, b"x" * 40, fin=False) + server_frame(CONTINUATION, b"x" * 40), 1009),
            (bytes((0x82, 127)) + (2**62).to_bytes(8, "big"), 1009),  # announced, never buffered
            (bytes((0x82, 0x81, 1, 2, 3, 4, 5)), 1002),  # masked by the server
            (bytes((0xC2, 1)) + b"x", 1002),  # RSV1 without an extension
            (server_frame(0x3, b""), 1002),  # reserved data opcode
            (server_frame(0xB, b""), 1002),  # reserved control opcode
            (server_frame(PING, b"x" * 126), 1002),  # control frame too long
            (server_frame(PING, b"", fin=False), 1002),  # fragmented control frame
            (server_frame(CONTINUATION, b"x"), 1002),  # continuation with nothing to continue
            (server_frame(TEXT, b"a", fin=False) + server_frame(BINARY, b"b"), 1002),  # new message mid-message
            (server_frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
            (server_frame(CLOSE, b"\x03"), 1002),  # one-byte close payload
            (server_frame(CLOSE, (1005).to_bytes(2, "big")), 1002),  # a code no peer may send
            (server_frame(CLOSE, (1000).to_bytes(2, "big") + b"\xff"), 1007),  # reason not UTF-8
        ],
    )  # fmt: skip
    def test_protocol_breaks_raise_websocket_error_with_the_close_code(self, data: bytes, code: int) -> None:
        """Each break of RFC 6455 (or of the 64-byte cap here) is one WebSocketError carrying its close code."""
        with pytest.raises(WebSocketError) as caught:
            FrameReader(64).feed(data)
        assert caught.value.close_code == code

    @given(st.lists(st.binary(max_size=200), max_size=8))
    def test_any_bytes_give_events_or_a_websocket_error(self, chunks: list[bytes]) -> None:
        """Whatever a server sends, in any split, the reader yields events or raises WebSocketError, nothing else."""
        reader = FrameReader(1024)
        with contextlib.suppress(WebSocketError):
            for chunk in chunks:
                reader.feed(chunk)

    def test_a_key_is_16_random_bytes_in_base64(self) -> None:
        """The Sec-WebSocket-Key is 16 bytes base64-encoded (section 4.1); another length is our bug."""
        assert make_key(bytes(16)) == "AAAAAAAAAAAAAAAAAAAAAA=="
        with pytest.raises(RuntimeError):
            make_key(b"short")
