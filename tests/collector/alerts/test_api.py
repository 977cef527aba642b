"""What a real collector shows of its alerts: the API, history, health, /metrics and ?alerts=1 subscribers."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import WSMsgType

from collector.alerts.routes import parse_alerts_config
from shared.messages import Hello, Snapshot
from tests.support.collector import RECEIVE_TIMEOUT_S, MakeClient, connect_agent, receive_message
from tests.support.messages import hello

OFFLINE_AT_ONCE = parse_alerts_config({"builtin": {"node_offline": {"for": "0s"}}})


async def offline_node(make_client: MakeClient, **overrides: Any) -> Any:
    """A collector where web-1 said hello and closed cleanly: node_offline fires at once."""
    client = await make_client(alerts=OFFLINE_AT_ONCE, **overrides)
    ws, _ = await connect_agent(client, hello_for("web-1"))
    await ws.close()
    return client


def hello_for(node_id: str) -> Hello:
    """A hello for ``node_id``."""
    return hello(node_id, f"inst-{node_id}")


async def next_map(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next binary frame as a plain msgpack map (alert messages are outside the v1 union)."""
    msg = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
    assert msg.type is WSMsgType.BINARY, f"expected a binary frame, got {msg.type!r}"
    data: dict[str, Any] = msgpack.unpackb(msg.data)
    return data


class TestHttp:
    async def test_alerts_lists_what_fires(self, make_client: MakeClient) -> None:
        """GET /api/v1/alerts shows node_offline firing for the node that left, with counts."""
        client = await offline_node(make_client)
        body = await (await client.get("/api/v1/alerts")).json()
        assert body["counts"] == {"pending": 0, "firing": 1, "unknown": 0}
        [alert] = body["alerts"]
        assert (alert["alertname"], alert["node_id"], alert["state"], alert["severity"]) == (
            "node_offline",
            "web-1",
            "firing",
            "critical",
        )

    async def test_history_has_the_transitions(self, make_client: MakeClient) -> None:
        """GET /api/v1/alerts/history answers the node's pending and firing steps, oldest first."""
        client = await offline_node(make_client)
        body = await (await client.get("/api/v1/alerts/history")).json()
        assert [(e["alertname"], e["old"], e["new"]) for e in body["events"]] == [
            ("node_offline", "inactive", "firing")
        ]
        assert body["truncated"] is False
        assert body["to_at"] - body["from_at"] == 86_400

    @pytest.mark.parametrize(
        ("query", "detail"),
        [
            ("from=10&to=5", "expected from < to"),
            ("from=abc", "expected from < to"),
            ("to=nan", "expected from < to"),
            ("limit=0", "expected limit=1..10000"),
            ("limit=1.5", "expected limit=1..10000"),
            ("limit=99999", "expected limit=1..10000"),
            ("limit=x", "expected limit=1..10000"),
        ],
    )
    async def test_a_bad_history_query_is_a_400(self, make_client: MakeClient, query: str, detail: str) -> None:
        """A from/to/limit that makes no sense answers 400 bad_request saying what is accepted."""
        client = await make_client()
        resp = await client.get(f"/api/v1/alerts/history?{query}")
        assert resp.status == 400
        body = await resp.json()
        assert body["error"] == "bad_request"
        assert detail in body["detail"]

    @pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/alerts/history"])
    async def test_alert_endpoints_need_a_viewer_token(self, make_client: MakeClient, path: str) -> None:
        """Alerts name nodes, so they need the viewer token like the node list."""
        client = await make_client(viewer_tokens=frozenset({"v"}))
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer v"})).status == 200

    async def test_health_and_metrics_show_alerts(self, make_client: MakeClient) -> None:
        """Health counts firing alerts and deliveries; /metrics has nodewatch_alerts and the notification counter."""
        client = await offline_node(make_client)
        health = await (await client.get("/api/v1/health")).json()
        assert health["alerts"] == {
            "firing": 1,
            "notifications_delivered": 0,
            "notifications_failed": 0,
            "notifications_dropped": 0,
            "notifications_queued": 0,
        }
        text = await (await client.get("/metrics")).text()
        assert 'nodewatch_alerts{alertname="node_offline",node="web-1",severity="critical",state="firing"} 1.0' in text
        assert 'nodewatch_alert_notifications_total{result="failed"} 0.0' in text


class TestSubscribe:
    async def test_opted_in_viewer_gets_alerts_then_transitions(self, make_client: MakeClient) -> None:
        """With ?alerts=1: the snapshot, then every live alert, then each transition as an alert message."""
        client = await offline_node(make_client)
        viewer = await client.ws_connect("/api/v1/subscribe?alerts=1")
        assert isinstance(await receive_message(viewer), Snapshot)
        live = await next_map(viewer)
        assert live["type"] == "alerts"
        assert [(a["alertname"], a["state"]) for a in live["alerts"]] == [("node_offline", "firing")]
        assert "value" not in live["alerts"][0]  # nil fields are left out, as everywhere on the wire
        ws, _ = await connect_agent(client, hello_for("web-1"))  # back: the alert resolves
        kinds = []
        while "alert" not in kinds:
            frame = await next_map(viewer)
            kinds.append(frame["type"])
        assert [(e["alertname"], e["old"], e["new"]) for e in frame["events"]] == [
            ("node_offline", "firing", "resolved")
        ]
        await ws.close()
        await viewer.close()

    async def test_a_viewer_that_did_not_ask_never_sees_alert_messages(self, make_client: MakeClient) -> None:
        """Without ?alerts=1 the wire is protocol version 1 as it was: only snapshot and update."""
        client = await offline_node(make_client)
        viewer = await client.ws_connect("/api/v1/subscribe")
        assert isinstance(await receive_message(viewer), Snapshot)
        ws, _ = await connect_agent(client, hello_for("web-1"))
        frame = await next_map(viewer)
        assert frame["type"] == "update"
        await ws.close()
        await viewer.close()

    async def test_json_viewer_gets_json_alerts(self, make_client: MakeClient) -> None:
        """?format=json&alerts=1 gets the alerts message as JSON text like everything else."""
        client = await offline_node(make_client)
        viewer = await client.ws_connect("/api/v1/subscribe?format=json&alerts=1")
        first = await viewer.receive(timeout=RECEIVE_TIMEOUT_S)
        assert json.loads(first.data)["type"] == "snapshot"
        second = await viewer.receive(timeout=RECEIVE_TIMEOUT_S)
        assert json.loads(second.data)["type"] == "alerts"
        await viewer.close()

    async def test_a_bad_alerts_value_is_a_400(self, make_client: MakeClient) -> None:
        """?alerts=yes is refused with a JSON 400 naming the accepted values."""
        client = await make_client()
        resp = await client.get("/api/v1/subscribe?alerts=yes")
        assert resp.status == 400
        assert "expected alerts=0 or alerts=1" in (await resp.json())["detail"]
