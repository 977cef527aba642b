"""Integration tests: a real collector on loopback, real websocket agents and viewers (aiohttp clients)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import aiohttp
import msgpack
import pytest
from aiohttp import WSMsgType

from collector.app import RUNTIME_KEY, CollectorRuntime
from shared.codec import COLLECTOR_LIMITS, decode, decode_json, encode, encode_json
from shared.messages import Heartbeat, HistoryRequest, NodeEntry, NodeHistory, Snapshot, Update
from tests.support.collector import MakeClient, connect_agent, expect_rejection, receive_message, send_heartbeat
from tests.support.messages import heartbeat, hello


def runtime(client: Any) -> CollectorRuntime:
    """The running collector's state, through its public AppKey."""
    return client.server.app[RUNTIME_KEY]  # type: ignore[no-any-return]


async def node_json(client: Any, node_id: str) -> dict[str, Any]:
    """GET /api/v1/nodes/{node_id} as JSON."""
    resp = await client.get(f"/api/v1/nodes/{node_id}")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def next_update(ws: aiohttp.ClientWebSocketResponse, predicate: Any) -> NodeEntry:
    """Read updates until one carries a NodeEntry matching ``predicate``; fail after a few seconds."""
    async with asyncio.timeout(5):
        while True:
            message = await receive_message(ws)
            if isinstance(message, Update):
                for entry in message.nodes:
                    if predicate(entry):
                        return entry


class TestIngest:
    async def test_hello_ack_and_heartbeat_acks(self, make_client: MakeClient) -> None:
        """A new agent gets Ack(0), then one cumulative ack per heartbeat, and the node shows up online."""
        client = await make_client()
        ws, ack = await connect_agent(client, hello())
        assert ack.seq == 0
        for seq in (1, 2, 3):
            assert (await send_heartbeat(ws, heartbeat(seq))).seq == seq
        body = await node_json(client, "node-a")
        assert body["status"]["state"] == "online"
        assert body["status"]["last_seq"] == 3
        assert body["last_sample"]["seq"] == 3
        assert body["history"]["seq"] == [1, 2, 3]
        await ws.close()

    async def test_reconnect_acks_held_seq_and_dedups_replay(self, make_client: MakeClient) -> None:
        """The same instance reconnecting gets Ack(highest held); replayed duplicates are ignored but acked."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello())
        for seq in (1, 2, 3):
            await send_heartbeat(ws, heartbeat(seq))
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)  # not clean in the protocol's sense
        ws2, ack = await connect_agent(client, hello())
        assert ack.seq == 3
        assert (await send_heartbeat(ws2, heartbeat(2, cpu=99.0))).seq == 3
        assert (await send_heartbeat(ws2, heartbeat(4))).seq == 4
        body = await node_json(client, "node-a")
        assert body["history"]["seq"] == [1, 2, 3, 4]
        assert 99.0 not in body["history"]["cpu_percent"]
        assert runtime(client).stats.heartbeats_duplicate == 1
        await ws2.close()

    async def test_a_new_instance_sample_is_the_latest_and_history_keeps_arrival_order(
        self, make_client: MakeClient
    ) -> None:
        """A new instance's first sample is the latest (by seq, issue 13), even stamped earlier; history: arrival."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(instance="a"))
        await send_heartbeat(ws, heartbeat(1, sampled_at=1_700_000_100.0, cpu=1.0))
        await send_heartbeat(ws, heartbeat(2, sampled_at=1_700_000_200.0, cpu=2.0))
        await ws.close()
        ws2, ack = await connect_agent(client, hello(instance="b"))
        assert ack.seq == 0
        await send_heartbeat(ws2, heartbeat(1, sampled_at=1_700_000_150.0, cpu=9.0))
        body = await node_json(client, "node-a")
        assert body["last_sample"]["cpu_percent"] == 9.0
        assert body["history"]["cpu_percent"] == [1.0, 2.0, 9.0]
        await ws2.close()

    async def test_same_instance_reconnect_replaces_old_connection(self, make_client: MakeClient) -> None:
        """A reconnect by the same instance drops the old socket; the node stays online on the new one."""
        client = await make_client()
        old, _ = await connect_agent(client, hello())
        new, _ = await connect_agent(client, hello())
        msg = await old.receive(timeout=3)
        assert msg.type in {WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR}
        assert (await send_heartbeat(new, heartbeat(1))).seq == 1
        assert (await node_json(client, "node-a"))["status"]["connected"] is True
        await new.close()

    async def test_duplicate_node_refused_4409_and_original_unaffected(self, make_client: MakeClient) -> None:
        """A different instance claiming a live node id gets Error + 4409; the holder keeps working."""
        client = await make_client()
        holder, _ = await connect_agent(client, hello(instance="a"))
        intruder = await client.ws_connect("/api/v1/ingest")
        await intruder.send_bytes(encode(hello(instance="b")))
        error, code, reason = await expect_rejection(intruder)
        assert (code, reason) == (4409, "duplicate_node")
        assert error is not None
        assert error.reason == "duplicate_node"
        assert (await send_heartbeat(holder, heartbeat(1))).seq == 1
        assert (await node_json(client, "node-a"))["status"]["agent_instance_id"] == "a"
        assert runtime(client).stats.protocol_errors[("ingest", "duplicate_node")] == 1
        await holder.close()

    async def test_max_nodes_refuses_new_node_4503(self, make_client: MakeClient) -> None:
        """With --max-nodes 1, a second node id is refused with 4503 capacity_reached."""
        client = await make_client(max_nodes=1)
        first, _ = await connect_agent(client, hello("n1"))
        second = await client.ws_connect("/api/v1/ingest")
        await second.send_bytes(encode(hello("n2")))
        _, code, reason = await expect_rejection(second)
        assert (code, reason) == (4503, "capacity_reached")
        assert (await send_heartbeat(first, heartbeat(1))).seq == 1
        await first.close()


def _hello_map(**changes: Any) -> dict[str, Any]:
    return {**hello().model_dump(mode="python", exclude_none=True), **changes}


# (test id, frames to send after connecting (None = send nothing), expected close code, expected reason, error frame?)
BAD_INGEST: list[tuple[str, list[bytes | str] | None, int, str, bool]] = [
    ("malformed msgpack", [b"\xc1\xc1"], 1008, "malformed_msgpack", True),
    ("schema violation", [msgpack.packb(_hello_map(interval_s="fast"))], 1008, "schema", True),
    ("unknown type", [msgpack.packb({"type": "bogus"})], 1008, "unknown_type", True),
    ("oversize frame", [b"\x00" * (100 * 1024)], 1009, "frame_too_large", True),
    ("over aiohttp's cap", [b"\x00" * (300 * 1024)], 1009, "", False),
    ("heartbeat before hello", [encode(heartbeat(1))], 1008, "unexpected_message", True),
    ("wrong protocol version", [msgpack.packb(_hello_map(protocol_version=2))], 1008, "unsupported_version", True),
    ("text frame", ["{}"], 1003, "text_frame", True),
    ("hello timeout", None, 1008, "hello_timeout", True),
    ("second hello", [encode(hello("bad-node")), encode(hello("bad-node"))], 1008, "unexpected_message", True),
    ("garbage after hello", [encode(hello("bad-node")), b"\x92\x01\x02"], 1008, "not_a_message", True),
]


class TestBadInput:
    @pytest.mark.parametrize(
        ("frames", "code", "reason", "has_error"), [case[1:] for case in BAD_INGEST], ids=[c[0] for c in BAD_INGEST]
    )
    async def test_bad_ingest_input_closes_only_that_connection(
        self, make_client: MakeClient, frames: list[bytes | str] | None, code: int, reason: str, has_error: bool
    ) -> None:
        """Bad input gets an Error frame and a specific close code; another agent and a viewer are unaffected."""
        client = await make_client()
        good, _ = await connect_agent(client, hello("good"))
        viewer = await client.ws_connect("/api/v1/subscribe")
        assert isinstance(await receive_message(viewer), Snapshot)
        bad = await client.ws_connect("/api/v1/ingest")
        for frame in frames or []:
            if isinstance(frame, str):
                await bad.send_str(frame)
            else:
                await bad.send_bytes(frame)
        error, got_code, got_reason = await expect_rejection(bad)
        assert (got_code, got_reason) == (code, reason)
        assert (error is not None) == has_error
        if error is not None:
            assert error.reason == reason
        counted = reason or "frame_too_large"
        assert runtime(client).stats.protocol_errors[("ingest", counted)] == 1
        assert (await send_heartbeat(good, heartbeat(1))).seq == 1
        entry = await next_update(viewer, lambda e: e.status.node_id == "good" and e.last_sample is not None)
        assert entry.last_sample is not None
        assert entry.last_sample.seq == 1
        await good.close()
        await viewer.close()


class TestLiveness:
    async def test_clean_close_pushes_offline_agent_closed(self, make_client: MakeClient) -> None:
        """A viewer sees the node go offline with reason agent_closed as soon as the agent closes with 1000."""
        client = await make_client()
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        ws, _ = await connect_agent(client, hello())
        await ws.close()
        entry = await next_update(viewer, lambda e: e.status.state == "offline")
        assert (entry.status.reason, entry.status.connected) == ("agent_closed", False)
        await viewer.close()

    async def test_transitions_pushed_as_they_happen(self, make_client: MakeClient) -> None:
        """A silent 50 ms agent goes stale, then offline and dropped; each transition reaches the viewer, stamped."""
        client = await make_client()
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        ws, _ = await connect_agent(client, hello(interval_s=0.05))
        await send_heartbeat(ws, heartbeat(1))
        stale = await next_update(viewer, lambda e: e.status.state == "stale")
        offline = await next_update(viewer, lambda e: e.status.state == "offline")
        assert stale.status.reason == offline.status.reason == "no_heartbeat"
        # 3 and 10 intervals after the last heartbeat, by the collector's clock.
        assert offline.status.state_since_at - stale.status.state_since_at == pytest.approx(0.35, abs=0.05)
        # Offline on an open socket means a dead peer: the collector drops the connection (it does not ping agents).
        msg = await ws.receive(timeout=3)
        assert msg.type in {WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR}
        gone = await next_update(viewer, lambda e: e.status.state == "offline" and not e.status.connected)
        assert gone.status.reason == "no_heartbeat"
        ws, ack = await connect_agent(client, hello(interval_s=0.05))
        assert ack.seq == 1  # the same instance is told what the collector holds, and replays the rest
        await send_heartbeat(ws, heartbeat(2))
        back = await next_update(viewer, lambda e: e.status.state == "online")
        assert back.status.connected is True
        await ws.close()
        await viewer.close()

    async def test_forgotten_node_is_removed_for_viewers(self, make_client: MakeClient) -> None:
        """An offline node past --forget-after disappears: Update.removed names it and the API forgets it."""
        client = await make_client(forget_after_s=0.2)
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        ws, _ = await connect_agent(client, hello())
        await ws.close()
        async with asyncio.timeout(5):
            while True:
                message = await receive_message(viewer)
                if isinstance(message, Update) and "node-a" in message.removed:
                    break
        assert (await client.get("/api/v1/nodes/node-a")).status == 404
        await viewer.close()


class TestSubscribe:
    async def test_snapshot_then_batched_updates(self, make_client: MakeClient) -> None:
        """The first frame is a snapshot with history; then updates carry status and the new sample."""
        client = await make_client()
        agent, _ = await connect_agent(client, hello())
        for seq in (1, 2):
            await send_heartbeat(agent, heartbeat(seq))
        viewer = await client.ws_connect("/api/v1/subscribe")
        snapshot = await receive_message(viewer)
        assert isinstance(snapshot, Snapshot)
        (entry,) = snapshot.nodes
        assert entry.facts is not None
        assert entry.facts.hostname == "host-a"
        assert entry.history is not None
        assert entry.history.seq == [1, 2]
        for seq in range(3, 13):
            await send_heartbeat(agent, heartbeat(seq))
        latest = await next_update(viewer, lambda e: e.last_sample is not None and e.last_sample.seq == 12)
        assert latest.facts is None  # facts only when new or changed
        assert runtime(client).stats.updates_sent >= 1
        await agent.close()
        await viewer.close()

    async def test_history_request_binary(self, make_client: MakeClient) -> None:
        """A HistoryRequest is answered with the node's full history; an unknown node gets an empty one."""
        client = await make_client(snapshot_history_points=2)
        agent, _ = await connect_agent(client, hello())
        for seq in range(1, 6):
            await send_heartbeat(agent, heartbeat(seq))
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        await viewer.send_bytes(encode(HistoryRequest(node_id="node-a")))
        await viewer.send_bytes(encode(HistoryRequest(node_id="nobody")))
        replies: dict[str, NodeHistory] = {}
        async with asyncio.timeout(5):
            while len(replies) < 2:
                message = await receive_message(viewer)
                if isinstance(message, NodeHistory):
                    replies[message.node_id] = message
        assert replies["node-a"].history.seq == [1, 2, 3, 4, 5]
        assert replies["nobody"].history.seq == []
        await agent.close()
        await viewer.close()

    async def test_json_format(self, make_client: MakeClient) -> None:
        """?format=json sends the same messages as JSON text frames and accepts JSON requests."""
        client = await make_client()
        agent, _ = await connect_agent(client, hello())
        await send_heartbeat(agent, heartbeat(1))
        viewer = await client.ws_connect("/api/v1/subscribe?format=json")
        msg = await viewer.receive(timeout=3)
        assert msg.type is WSMsgType.TEXT
        assert isinstance(decode_json(msg.data, COLLECTOR_LIMITS), Snapshot)
        await viewer.send_str(encode_json(HistoryRequest(node_id="node-a")))
        async with asyncio.timeout(5):
            while True:
                msg = await viewer.receive()
                assert msg.type is WSMsgType.TEXT
                if json.loads(msg.data)["type"] == "history":
                    break
        assert json.loads(msg.data)["history"]["seq"] == [1]
        await agent.close()
        await viewer.close()

    async def test_bad_subscriber_input(self, make_client: MakeClient) -> None:
        """A text frame on a binary subscription is closed 1003; a non-request message 1008."""
        client = await make_client()
        viewer = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer)
        await viewer.send_str("hi")
        assert (await expect_rejection(viewer))[1:] == (1003, "text_frame")
        viewer2 = await client.ws_connect("/api/v1/subscribe")
        await receive_message(viewer2)
        await viewer2.send_bytes(encode(heartbeat(1)))
        assert (await expect_rejection(viewer2))[1:] == (1008, "unexpected_message")

    async def test_bad_format_is_400(self, make_client: MakeClient) -> None:
        """An unknown ?format is refused before the upgrade with a JSON 400."""
        client = await make_client()
        resp = await client.get("/api/v1/subscribe?format=xml")
        assert resp.status == 400
        assert (await resp.json())["error"] == "bad_request"

    async def test_slow_subscriber_closed_while_others_keep_up(self, make_client: MakeClient) -> None:
        """A viewer that stops reading is cut off (4429, counted); a reading viewer keeps getting every update."""
        client = await make_client(send_timeout_s=0.3)
        agent = await client.ws_connect("/api/v1/ingest")
        await agent.send_bytes(encode(hello()))
        big = [50.0] * 1024  # ~9 KiB per heartbeat, so history replies are ~75 KiB
        for seq in range(1, 901):
            await agent.send_bytes(encode(heartbeat(seq, cpu_per_core_percent=big[:8])))
        async with asyncio.timeout(10):
            while (await receive_message(agent)).seq < 900:  # type: ignore[union-attr]
                pass
        fast = await client.ws_connect("/api/v1/subscribe")
        slow = await client.ws_connect("/api/v1/subscribe")
        seen: list[int] = []
        caught_up = asyncio.Event()
        final_seq = 10**9

        async def read_fast() -> None:
            while True:
                message = await receive_message(fast)
                if isinstance(message, Update):
                    seen.extend(e.last_sample.seq for e in message.nodes if e.last_sample is not None)
                    if seen and seen[-1] == final_seq:
                        caught_up.set()

        stats = runtime(client).stats
        seq = 900
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(read_fast())
            async with asyncio.timeout(20):
                while stats.protocol_errors[("subscribe", "subscriber_too_slow")] == 0:
                    seq += 1
                    await agent.send_bytes(encode(heartbeat(seq, cpu_per_core_percent=big)))
                    await slow.send_bytes(encode(HistoryRequest(node_id="node-a")))
                    await asyncio.sleep(0.03)
            final_seq = seq + 1
            await agent.send_bytes(encode(heartbeat(final_seq)))
            async with asyncio.timeout(5):
                await caught_up.wait()
            reader.cancel()
        assert len(runtime(client).subscribers) == 1
        error, code, _ = await expect_rejection(slow)  # reads what was buffered, then the end
        assert error is None, "4429 comes with no error frame: the viewer is not reading (contract point 13)"
        assert code in {4429, 1006, None}
        await agent.close()
        await fast.close()


class TestAuth:
    TOKENS: ClassVar[dict[str, frozenset[str]]] = {
        "agent_tokens": frozenset({"agent-secret"}),
        "viewer_tokens": frozenset({"viewer-secret"}),
    }

    @pytest.mark.parametrize(
        ("path", "header", "endpoint"),
        [
            ("/api/v1/ingest", None, "ingest"),
            ("/api/v1/ingest", "Bearer wrong", "ingest"),
            ("/api/v1/ingest", "Bearer viewer-secret", "ingest"),
            ("/api/v1/ingest", "Basic agent-secret", "ingest"),
            ("/api/v1/subscribe", None, "subscribe"),
            ("/api/v1/subscribe", "Bearer agent-secret", "subscribe"),
            ("/api/v1/nodes", None, "http"),
            ("/metrics", "Bearer agent-secret", "http"),
        ],
    )
    async def test_wrong_or_missing_token_is_401_json(
        self, make_client: MakeClient, path: str, header: str | None, endpoint: str
    ) -> None:
        """Without the right bearer token the request gets a JSON 401 before any upgrade, and is counted."""
        client = await make_client(**self.TOKENS)
        headers = {"Authorization": header} if header else {}
        resp = await client.get(path, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        if path.startswith("/api/v1/ingest") or path.startswith("/api/v1/subscribe"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await client.ws_connect(path, headers=headers)
            assert info.value.status == 401
        assert runtime(client).stats.auth_failures[endpoint] >= 1

    async def test_refused_agent_ingests_nothing_and_token_never_logged(
        self, make_client: MakeClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A wrong agent token leaves the cache empty, and no token appears in the logs."""
        client = await make_client(**self.TOKENS)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect("/api/v1/ingest", headers={"Authorization": "Bearer not-the-secret"})
        assert len(runtime(client).cache) == 0
        assert "not-the-secret" not in caplog.text
        assert "agent-secret" not in caplog.text

    async def test_right_tokens_work(self, make_client: MakeClient) -> None:
        """With the right tokens, an agent ingests and a viewer subscribes and reads the API."""
        client = await make_client(**self.TOKENS)
        agent, _ = await connect_agent(client, hello(), headers={"Authorization": "Bearer agent-secret"})
        await send_heartbeat(agent, heartbeat(1))
        viewer_headers = {"Authorization": "Bearer viewer-secret"}
        viewer = await client.ws_connect("/api/v1/subscribe", headers=viewer_headers)
        assert isinstance(await receive_message(viewer), Snapshot)
        resp = await client.get("/api/v1/nodes", headers=viewer_headers)
        assert [n["status"]["node_id"] for n in (await resp.json())["nodes"]] == ["node-a"]
        health = await client.get("/api/v1/health")
        assert health.status == 200  # health stays open; it shows counts only
        await agent.close()
        await viewer.close()


class TestHttp:
    async def test_health_shape(self, make_client: MakeClient) -> None:
        """Health reports status, version, uptime, node counts, ingest rate, subscribers and loop lag."""
        client = await make_client()
        agent, _ = await connect_agent(client, hello())
        await send_heartbeat(agent, heartbeat(1))
        resp = await client.get("/api/v1/health")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok"
        assert body["nodes"] == {"total": 1, "online": 1, "stale": 0, "offline": 0}
        assert body["agents_connected"] == 1
        assert body["subscribers"] == 0
        assert body["heartbeats_received"] == 1
        assert set(body) >= {  # >=: the alerts service adds its own part (docs/alerts.md)
            "status",
            "version",
            "protocol_version",
            "started_at",
            "uptime_s",
            "nodes",
            "agents_connected",
            "subscribers",
            "ingest_heartbeats_per_s",
            "heartbeats_received",
            "event_loop_lag_ms",
            "event_loop_lag_max_ms",
            "store",
        }
        assert body["store"]["status"] == "off"  # create_app's default keeps everything in memory
        await agent.close()

    async def test_nodes_list_and_state_filter(self, make_client: MakeClient) -> None:
        """/api/v1/nodes lists nodes with status, facts and last sample; ?state= filters; a bad state is 400."""
        client = await make_client()
        a, _ = await connect_agent(client, hello("a"))
        await send_heartbeat(a, heartbeat(1))
        b, _ = await connect_agent(client, hello("b"))
        await b.close()
        await asyncio.sleep(0.05)  # the close is processed by the server's handler
        body = await (await client.get("/api/v1/nodes")).json()
        assert [n["status"]["node_id"] for n in body["nodes"]] == ["a", "b"]
        assert body["nodes"][0]["facts"]["hostname"] == "host-a"
        assert body["nodes"][0]["last_sample"]["seq"] == 1
        assert "history" not in body["nodes"][0]
        offline = await (await client.get("/api/v1/nodes?state=offline")).json()
        assert [n["status"]["node_id"] for n in offline["nodes"]] == ["b"]
        bad = await client.get("/api/v1/nodes?state=dead")
        assert bad.status == 400
        assert "online|stale|offline" in (await bad.json())["detail"]
        await a.close()

    async def test_unknown_node_and_unknown_api_path_are_json_404(self, make_client: MakeClient) -> None:
        """A missing node is a JSON 404; /api/v1/status is a JSON 404 naming the endpoints that exist."""
        client = await make_client()
        assert (await client.get("/api/v1/nodes/ghost")).status == 404
        resp = await client.get("/api/v1/status")
        assert resp.status == 404
        body = await resp.json()
        assert body["error"] == "not_found"
        assert "GET /api/v1/health" in body["endpoints"]

    async def test_metrics_content(self, make_client: MakeClient) -> None:
        """/metrics is Prometheus text with node gauges by node and the collector's own counters."""
        client = await make_client()
        agent, _ = await connect_agent(client, hello())
        await send_heartbeat(agent, heartbeat(1, cpu=25.0))
        bad = await client.ws_connect("/api/v1/ingest")
        await bad.send_bytes(b"\xc1")
        await expect_rejection(bad)
        resp = await client.get("/metrics")
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
        assert 'nodewatch_node_cpu_usage_ratio{node="node-a"} 0.25' in text
        assert 'nodewatch_node_state{node="node-a",state="online"} 1.0' in text
        assert "nodewatch_collector_heartbeats_received_total 1.0" in text
        assert 'nodewatch_collector_protocol_errors_total{endpoint="ingest",reason="malformed_msgpack"} 1.0' in text
        assert 'nodewatch_collector_connections_total{endpoint="ingest"} 2.0' in text
        await agent.close()


class TestShutdown:
    async def test_shutdown_closes_every_websocket_with_1001(self, aiohttp_server: Any) -> None:
        """Stopping the server closes agents and viewers with 1001 going away, promptly."""
        from collector.app import create_app
        from collector.config import CollectorConfig

        server = await aiohttp_server(create_app(CollectorConfig(close_timeout_s=0.5)))
        session = aiohttp.ClientSession()
        try:
            agent = await session.ws_connect(server.make_url("/api/v1/ingest"))
            await agent.send_bytes(encode(hello()))
            await agent.receive(timeout=3)
            viewer = await session.ws_connect(server.make_url("/api/v1/subscribe"))
            await viewer.receive(timeout=3)
            async with asyncio.timeout(3):
                closing = asyncio.create_task(server.close())
                codes = []
                for ws in (agent, viewer):
                    msg = await ws.receive()
                    codes.append((msg.type, msg.data))
                await closing
            assert codes == [(WSMsgType.CLOSE, 1001), (WSMsgType.CLOSE, 1001)]
        finally:
            await session.close()


def test_heartbeat_model_is_what_agents_send() -> None:
    """Sanity: the test heartbeat round-trips through the codec unchanged."""
    message = heartbeat(3)
    assert decode(encode(message)) == message
    assert isinstance(message, Heartbeat)


def test_ack_fast_path_matches_codec() -> None:
    """The hand-packed ack is byte-for-byte what shared.codec.encode produces."""
    from collector.ingest_session import ack_frame
    from shared.messages import Ack

    for seq in (0, 1, 127, 128, 255, 256, 300, 65535, 65536, 2**32 - 1, 2**32, 2**40, 2**63 - 1):
        assert ack_frame(seq) == encode(Ack(seq=seq)), seq
