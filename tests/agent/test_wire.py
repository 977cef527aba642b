"""The agent's pydantic-free wire code agrees with shared: same constants, same bytes, safe decoding."""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import AgentConfig
from agent.runner import Agent
from agent.wire import InboundAck, InboundError, decode_inbound
from shared.codec import decode, encode
from shared.errors import ErrorReason, ProtocolError
from shared.messages import Ack, Error, Hello

from .fakes import FakePsutil


class TestMirrors:
    def test_hello_frame_is_what_shared_encodes(self, tmp_path: Path) -> None:
        """The hello the agent packs decodes as a Hello and re-encodes to the very same bytes."""
        config = AgentConfig(ingest_url="ws://127.0.0.1:1/api/v1/ingest", node_id="n1", interval_s=0.5)
        agent = Agent(config, ps=FakePsutil(), cgroup_root=tmp_path, wall_clock=lambda: 1_700_000_000.5)
        frame = agent.hello_frame(7)
        hello = decode(frame)
        assert isinstance(hello, Hello)
        assert encode(hello) == frame
        assert hello.dropped_samples == 7
        assert hello.sent_at == 1_700_000_000.5
        assert hello.facts.cpu_count_logical == 2
        assert hello.facts.boot_time_at == 1_000.0


class TestDecodeInbound:
    def test_ack_and_error_from_shared_encode(self) -> None:
        """Frames the collector builds with shared.codec decode to the agent's ack and error."""
        assert decode_inbound(encode(Ack(seq=42))) == InboundAck(42)
        assert decode_inbound(encode(Error(reason="schema", detail="bad"))) == InboundError("schema", "bad")

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"\xc1", ErrorReason.MALFORMED_MSGPACK),
            (msgpack.packb({"type": "ack", "seq": 1}) + b"\x00", ErrorReason.TRAILING_BYTES),
            (msgpack.packb([1, 2]), ErrorReason.NOT_A_MESSAGE),
            (msgpack.packb({"type": "ack", "seq": -1}), ErrorReason.SCHEMA),
            (msgpack.packb({"type": "ack", "seq": 1.5}), ErrorReason.SCHEMA),
            (msgpack.packb({"type": "ack", "seq": True}), ErrorReason.SCHEMA),
            (msgpack.packb({"type": "ack", "seq": 1, "x": 1}), ErrorReason.SCHEMA),
            (msgpack.packb({"type": "error", "reason": 1, "detail": "d"}), ErrorReason.SCHEMA),
            (msgpack.packb({"type": "snapshot"}), ErrorReason.UNEXPECTED_MESSAGE),
            (msgpack.packb({1: 2}), ErrorReason.MALFORMED_MSGPACK),
            (b"\x00" * (64 * 1024 + 1), ErrorReason.FRAME_TOO_LARGE),
        ],
    )
    def test_bad_frames_raise_protocol_error(self, payload: bytes, reason: ErrorReason) -> None:
        """Each kind of bad frame raises ProtocolError with a specific reason."""
        with pytest.raises(ProtocolError) as info:
            decode_inbound(payload)
        assert info.value.reason == reason

    @given(st.binary(max_size=256))
    def test_any_bytes_raise_only_protocol_error(self, data: bytes) -> None:
        """Whatever the bytes, decoding returns a message or raises ProtocolError, nothing else."""
        with contextlib.suppress(ProtocolError):
            decode_inbound(data)
