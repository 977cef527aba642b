"""Node labels in the collector: kept with the facts, shown in the API, the snapshot and /metrics, and fed to alerts."""

from __future__ import annotations

import asyncio
import re
import shutil
from asyncio.subprocess import PIPE
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from collector.alerting import AlertHub
from collector.alerts.routes import parse_alerts_config
from collector.cache import ChangeKind, NodeCache
from shared.messages import Hello, NodeFacts, Snapshot
from tests.support.clock import FakeClock
from tests.support.collector import MakeClient, connect_agent, receive_message, send_heartbeat
from tests.support.messages import WALL_T0, facts, heartbeat, hello


def labelled_hello(node_id: str, labels: Mapping[str, str] | None, instance: str = "inst-1") -> Hello:
    """A hello from ``node_id`` whose facts carry ``labels``."""
    labelled = facts(node_id).model_copy(update={"labels": None if labels is None else dict(labels)})
    return hello(node_id, instance).model_copy(update={"facts": labelled})


def info_labels(text: str, node_id: str) -> dict[str, str]:
    """The labels of ``node_id``'s ``nodewatch_node_info`` series in an exposition."""
    family = next(f for f in text_string_to_metric_families(text) if f.name == "nodewatch_node_info")
    return next(dict(s.labels) for s in family.samples if s.labels["node"] == node_id)


class TestWireBounds:
    @pytest.mark.parametrize(
        "labels",
        [
            {"1st": "x"},
            {"my-role": "x"},
            {"k" * 64: "x"},
            {"role": ""},
            {"role": "v" * 257},
            {f"k{i}": "v" for i in range(33)},
        ],
    )
    def test_a_hello_with_bad_labels_is_refused(self, labels: dict[str, str]) -> None:
        """Labels outside shared.limits' bounds fail validation, so a collector refuses such a hello."""
        with pytest.raises(ValidationError):
            NodeFacts.model_validate({**facts().model_dump(), "labels": labels})


class TestCache:
    def test_a_new_hello_replaces_the_labels(self) -> None:
        """The node keeps the labels of its latest hello; new labels are a facts change viewers are sent."""
        cache = NodeCache()
        cache.hello(labelled_hello("web-1", {"role": "web"}), 1, 0.0, WALL_T0)
        record = cache.get("web-1")
        assert record is not None
        assert record.facts.labels == {"role": "web"}
        cache.close("web-1", 1, clean=True, now=0.5, wall=WALL_T0 + 0.5)  # the agent restarts with new labels
        result = cache.hello(labelled_hello("web-1", {"role": "db"}, "inst-2"), 2, 1.0, WALL_T0 + 1)
        assert record.facts.labels == {"role": "db"}
        assert result.changes[0].kind & ChangeKind.FACTS
        cache.close("web-1", 2, clean=True, now=1.5, wall=WALL_T0 + 1.5)
        cache.hello(labelled_hello("web-1", None, "inst-3"), 3, 2.0, WALL_T0 + 2)
        assert record.facts.labels is None


LABEL_RULE = {"name": "web_cpu", "condition": "cpu_percent > 90", "labels": {"role": "web"}}


class TestAlertSelectors:
    def test_a_rule_selecting_by_label_fires_only_for_the_labelled_node(self) -> None:
        """Two nodes equally hot: only the one started with --label role=web fires the role=web rule."""
        wall, mono = FakeClock(WALL_T0), FakeClock()
        cache = NodeCache()
        config = parse_alerts_config({"rule": [LABEL_RULE]})
        hub = AlertHub(config, {}, cache, (), state_dir=None, wall_clock=wall, clock=mono)
        for conn, (node_id, labels) in enumerate([("web-1", {"role": "web"}), ("db-1", {"role": "db"}), ("x", None)]):
            hub.changed(cache.hello(labelled_hello(node_id, labels), conn, mono(), wall()).changes)
            sample = heartbeat(1, cpu=99.0, sampled_at=wall())
            cache.heartbeat(node_id, conn, sample, mono(), wall())
            hub.sample(node_id, sample)
        firing = [a for a in hub.service.api_alerts()["alerts"] if a["state"] == "firing"]
        assert [(a["alertname"], a["node_id"]) for a in firing] == [("web_cpu", "web-1")]
        # The transition carries the node's labels: what routes match and notifications show.
        assert [row["labels"] for row in hub.events if row["alertname"] == "web_cpu"] == [{"role": "web"}]


class TestLoopback:
    async def test_labels_reach_the_api_the_snapshot_and_metrics(self, make_client: MakeClient) -> None:
        """A hello's labels show in /api/v1/nodes facts, a viewer's snapshot, and one node_info series."""
        client = await make_client()
        web, _ = await connect_agent(client, labelled_hello("web-1", {"role": "web", "dc": "fra"}))
        plain, _ = await connect_agent(client, labelled_hello("db-1", None))
        for ws in (web, plain):
            await send_heartbeat(ws, heartbeat(1))
        body: dict[str, Any] = await (await client.get("/api/v1/nodes")).json()
        shown = {node["status"]["node_id"]: node["facts"].get("labels") for node in body["nodes"]}
        assert shown == {"db-1": None, "web-1": {"role": "web", "dc": "fra"}}
        viewer = await client.ws_connect("/api/v1/subscribe")
        snapshot = await receive_message(viewer)
        assert isinstance(snapshot, Snapshot)
        assert {e.status.node_id: e.facts.labels for e in snapshot.nodes if e.facts} == {
            "db-1": None,
            "web-1": {"role": "web", "dc": "fra"},
        }
        text = (await (await client.get("/metrics")).read()).decode()
        assert info_labels(text, "web-1")["label_role"] == "web"
        assert info_labels(text, "web-1")["label_dc"] == "fra"
        assert not any(key.startswith("label_") for key in info_labels(text, "db-1"))
        assert len(re.findall(r"label_role=", text)) == 1  # on the info series only, not on every series
        for ws in (web, plain, viewer):
            await ws.close()

    async def test_promtool_accepts_labelled_metrics(self, make_client: MakeClient) -> None:
        """`promtool check metrics` stays clean with labels whose values need escaping."""
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.skip("promtool not installed (Debian package prometheus)")
        client = await make_client()
        labels = {"role": "web", "note": 'say "hi" \\ {ok}\nbye', "_x": "1"}
        ws, _ = await connect_agent(client, labelled_hello("web-1", labels))
        await send_heartbeat(ws, heartbeat(1))
        text = await (await client.get("/metrics")).read()
        assert info_labels(text.decode(), "web-1")["label_note"] == labels["note"]
        check = await asyncio.create_subprocess_exec(promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        async with asyncio.timeout(60):
            out, err = await check.communicate(text)
        assert check.returncode == 0, out.decode() + err.decode()
        assert out.decode() + err.decode() == ""
        await ws.close()
