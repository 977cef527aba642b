"""The contract points of issue 11 that a third-party agent or viewer meets on the wire, each on a real collector.

Each test names its point (1-15) and checks what docs/protocol.md now says.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import WSMsgType

from collector.app import create_app
from shared.codec import COLLECTOR_LIMITS, decode, encode, encode_json
from shared.errors import CloseCode
from shared.messages import Error, HistoryRequest, NodeHistory, Snapshot, Update
from tests.support.collector import (
    connect_agent,
    expect_rejection,
    fast_config,
    receive_message,
    send_heartbeat,
)
from tests.support.messages import heartbeat, hello


async def collector(aiohttp_client: Any, **overrides: Any) -> Any:
    """A real collector on loopback with the test timeouts."""
    return await aiohttp_client(create_app(fast_config(**overrides)))


async def next_update_frame(viewer: aiohttp.ClientWebSocketResponse) -> bytes:
    """The raw bytes of the next update the viewer gets."""
    async with asyncio.timeout(5):
        while True:
            msg = await viewer.receive()
            assert msg.type is WSMsgType.BINARY
            if isinstance(decode(msg.data, COLLECTOR_LIMITS), Update):
                data: bytes = msg.data
                return data


class TestEncoding:
    async def test_point_1_float32_is_relayed_as_float64(self, aiohttp_client: Any) -> None:
        """Point 1: an agent's float32 sample is acked, and viewers get it as float64 with the same value."""
        client = await collector(aiohttp_client)
        viewer = await client.ws_connect("/api/v1/subscribe")
        assert isinstance(await receive_message(viewer), Snapshot)
        ws, _ = await connect_agent(client, hello())
        frame = msgpack.packb(encode_map(heartbeat(1, cpu=12.5)), use_single_float=True)
        assert b"\xca" + struct.pack(">f", 12.5) in frame
        await ws.send_bytes(frame)
        assert (await receive_message(ws)).seq == 1  # type: ignore[union-attr]
        update = await next_update_frame(viewer)
        assert b"\xca" + struct.pack(">f", 12.5) not in update
        assert b"\xcb" + struct.pack(">d", 12.5) in update
        await ws.close()
        await viewer.close()

    @pytest.mark.parametrize(
        ("frame", "reason", "code"),
        [
            (msgpack.packb({**{"type": "hello"}, "node_id": "x" * 4097}), "string_too_long", CloseCode.MESSAGE_TOO_BIG),
            (b"\xd4\x01\x00", "malformed_msgpack", CloseCode.POLICY_VIOLATION),  # fixext 1: an ext type
        ],
        ids=["string-over-4096-bytes", "ext-type"],
    )
    async def test_point_10_named_outcomes_on_ingest(
        self, aiohttp_client: Any, frame: bytes, reason: str, code: int
    ) -> None:
        """Point 10: a too-long string is string_too_long (1009), an ext type malformed_msgpack (1008)."""
        client = await collector(aiohttp_client)
        ws = await client.ws_connect("/api/v1/ingest")
        await ws.send_bytes(frame)
        error, got_code, got_reason = await expect_rejection(ws)
        assert (got_code, got_reason) == (code, reason)
        assert error is not None
        assert error.reason == reason


class TestSubscribeFrames:
    async def test_point_2_over_the_websocket_cap_is_a_bare_1009(self, aiohttp_client: Any) -> None:
        """Point 2: a subscribe frame over 16 KiB is cut by the websocket layer: 1009, no error frame."""
        client = await collector(aiohttp_client)
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        await viewer.send_bytes(b"\x00" * (20 * 1024))
        error, code, _ = await expect_rejection(viewer)
        assert (error, code) == (None, CloseCode.MESSAGE_TOO_BIG)

    async def test_point_2_between_the_limits_an_error_comes_first(self, aiohttp_client: Any) -> None:
        """Point 2: a subscribe frame between 4 KiB and 16 KiB gets an error frame_too_large, then 1009."""
        client = await collector(aiohttp_client)
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        await viewer.send_bytes(b"\x00" * (8 * 1024))
        error, code, reason = await expect_rejection(viewer)
        assert isinstance(error, Error)
        assert (error.reason, code, reason) == ("frame_too_large", CloseCode.MESSAGE_TOO_BIG, "frame_too_large")

    async def test_point_10_text_on_a_msgpack_subscribe_is_1003(self, aiohttp_client: Any) -> None:
        """Point 10: a text frame from a msgpack viewer is refused with 1003 text_frame."""
        client = await collector(aiohttp_client)
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        await viewer.send_str(encode_json(HistoryRequest(node_id="node-a")))
        _, code, reason = await expect_rejection(viewer)
        assert (code, reason) == (CloseCode.UNSUPPORTED_DATA, "text_frame")

    async def test_point_10_binary_on_a_json_subscribe_is_accepted(self, aiohttp_client: Any) -> None:
        """Point 10: a JSON viewer may send its request as binary msgpack; the answer comes as JSON text."""
        client = await collector(aiohttp_client)
        viewer = await client.ws_connect("/api/v1/subscribe?format=json")
        assert (await viewer.receive(timeout=3)).type is WSMsgType.TEXT  # the snapshot
        await viewer.send_bytes(encode(HistoryRequest(node_id="node-a")))
        async with asyncio.timeout(5):
            while True:
                msg = await viewer.receive()
                assert msg.type is WSMsgType.TEXT
                if '"history"' in msg.data and '"node_id":"node-a"' in msg.data:
                    break
        NodeHistory.model_validate_json(msg.data)
        await viewer.close()


class TestIngestConnections:
    async def test_point_5_a_replaced_connection_sees_1006(self, aiohttp_client: Any) -> None:
        """Point 5: the same instance reconnecting drops the old connection with no close frame (1006)."""
        client = await collector(aiohttp_client)
        old, _ = await connect_agent(client, hello())
        new, _ = await connect_agent(client, hello())
        msg = await old.receive(timeout=3)
        assert msg.type in {WSMsgType.CLOSED, WSMsgType.ERROR}, f"expected no close frame, got {msg!r}"
        assert old.close_code == 1006
        assert (await send_heartbeat(new, heartbeat(1))).seq == 1
        await new.close()

    async def test_point_12_health_counts_agents_after_their_hello(self, aiohttp_client: Any) -> None:
        """Point 12: an ingest socket with no hello yet is no agent in health's agents_connected."""
        client = await collector(aiohttp_client, hello_timeout_s=5.0)
        silent = await client.ws_connect("/api/v1/ingest")
        assert (await (await client.get("/api/v1/health")).json())["agents_connected"] == 0
        ws, _ = await connect_agent(client, hello())
        assert (await (await client.get("/api/v1/health")).json())["agents_connected"] == 1
        await ws.close()
        await silent.close()


class TestHttpDetails:
    async def test_point_14_node_detail_before_and_after_the_first_heartbeat(self, aiohttp_client: Any) -> None:
        """Point 14: before any heartbeat the node has last_seen_at (from the hello) and no last_sample."""
        client = await collector(aiohttp_client)
        ws, _ = await connect_agent(client, hello())
        body = await (await client.get("/api/v1/nodes/node-a")).json()
        assert "last_sample" not in body
        assert body["status"]["last_seen_at"] is not None
        await send_heartbeat(ws, heartbeat(1))
        body = await (await client.get("/api/v1/nodes/node-a")).json()
        assert body["last_sample"]["seq"] == 1
        await ws.close()

    @pytest.mark.parametrize("path", ["/api/v1/ingest", "/api/v1/subscribe"])
    async def test_point_14_plain_get_on_a_websocket_path_is_json_400(self, aiohttp_client: Any, path: str) -> None:
        """Point 14: a GET without the upgrade on a websocket path answers a JSON 400 bad_request."""
        client = await collector(aiohttp_client)
        resp = await client.get(path)
        assert resp.status == 400
        assert resp.content_type == "application/json"
        assert (await resp.json())["error"] == "bad_request"


def encode_map(message: Any) -> dict[str, Any]:
    """The map ``encode`` would pack, for a test that packs it its own way."""
    packed: dict[str, Any] = msgpack.unpackb(encode(message))
    return packed
