"""Alerts end to end: a collector process with a rule file, real agents, and notifications through Apprise.

The collector is ``nodewatch collector --alerts-config FILE`` in a subprocess; the
notifications go through Apprise's ``json://`` URL to a webhook on loopback (the
``webhook`` fixture). Single agents are real ``nodewatch agent`` processes, killed with
SIGKILL; the 50-node outage uses websocket agents in this process whose connections all
drop at once, as a rack losing power would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from shared.codec import encode
from tests.alerts.webhook import Webhook
from tests.support.messages import heartbeat, hello
from tests.support.processes import ProcessGroup, get_json, wait_until

INTERVAL_S = 0.2  # offline after 10 intervals: 2 s
WAIT_S = 30.0  # generous on 2 busy cores; a passing test never waits this long


def rule_file(tmp_path: Path, webhook: Webhook, *, group_wait: str = "500ms") -> Path:
    """A rule file: node_offline after 1 s offline, sent to the webhook; other built-ins are not routed."""
    path = tmp_path / "alerts.toml"
    path.write_text(
        f"""
[alerts.builtin.node_offline]
for = "1s"

[[alerts.route]]
name = "hook"
urls = [{json.dumps(webhook.url)}]
alertnames = ["node_offline"]
group_wait = "{group_wait}"
group_interval = "1s"
repeat_interval = "1h"
""",
        encoding="utf-8",
    )
    return path


async def posts_reach(webhook: Webhook, count: int, what: str) -> None:
    """Wait until the webhook has received ``count`` notifications."""

    async def arrived() -> bool:
        return len(webhook.posts) >= count

    await wait_until(arrived, WAIT_S, what)


async def node_state(session: aiohttp.ClientSession, base: str, node_id: str) -> str | None:
    """The node's liveness state as the collector's API shows it."""
    status, body = await get_json(session, f"{base}/api/v1/nodes/{node_id}")
    return str(body["status"]["state"]) if status == 200 else None


async def live_alerts(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """``GET /api/v1/alerts``'s alerts."""
    _, body = await get_json(session, f"{base}/api/v1/alerts")
    return list(body["alerts"])


async def start_agent(procs: ProcessGroup, base: str, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A real ``nodewatch agent`` as web-1, and wait until the collector has it online."""
    procs.agent(base, "web-1", "--interval", str(INTERVAL_S), "--state-dir", str(tmp_path / "agent-state"))

    async def online() -> bool:
        return await node_state(session, base, "web-1") == "online"

    await wait_until(online, WAIT_S, "web-1 online")


async def test_a_killed_agent_gives_one_offline_then_one_resolved(
    procs: ProcessGroup, webhook: Webhook, tmp_path: Path
) -> None:
    """SIGKILL an agent: one [FIRING:1] node_offline after `for`; start it again: one [RESOLVED], nothing more."""
    collector = procs.collector("--alerts-config", str(rule_file(tmp_path, webhook)))
    async with aiohttp.ClientSession() as session:
        await start_agent(procs, collector.url, session, tmp_path)
        procs.procs[-1].kill()
        killed_at = time.monotonic()
        await posts_reach(webhook, 1, "the offline notification")
        # Offline 10 intervals after the last heartbeat (at most one interval before the kill), then `for`.
        assert time.monotonic() - killed_at >= 9 * INTERVAL_S + 1.0
        assert webhook.titles == ["[FIRING:1] node_offline"]
        assert "node_offline on web-1" in webhook.posts[0]["message"]
        assert webhook.posts[0]["type"] == "failure"  # critical
        firing = await live_alerts(session, collector.url)
        assert [(a["alertname"], a["node_id"], a["state"]) for a in firing] == [("node_offline", "web-1", "firing")]

        await start_agent(procs, collector.url, session, tmp_path)
        await posts_reach(webhook, 2, "the resolved notification")
        assert webhook.titles == ["[FIRING:1] node_offline", "[RESOLVED] node_offline"]
        assert webhook.posts[1]["type"] == "success"
        await asyncio.sleep(2.5)  # past group_interval: a second message would have come by now
        assert len(webhook.posts) == 2, webhook.titles
        assert await live_alerts(session, collector.url) == []
        _, health = await get_json(session, f"{collector.url}/api/v1/health")
        assert health["alerts"]["notifications_delivered"] == 2
        assert health["alerts"]["notifications_failed"] == 0
        _, history = await get_json(session, f"{collector.url}/api/v1/alerts/history")
        moves = [(e["old"], e["new"]) for e in history["events"] if e["alertname"] == "node_offline"]
        assert moves == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]


async def test_fifty_nodes_lost_at_once_give_one_grouped_notification(
    procs: ProcessGroup, webhook: Webhook, tmp_path: Path
) -> None:
    """50 agents whose connections all drop together give one [FIRING:50] node_offline message, not 50."""
    collector = procs.collector("--alerts-config", str(rule_file(tmp_path, webhook, group_wait="3s")))
    ingest = collector.url.replace("http://", "ws://") + "/api/v1/ingest"
    session = aiohttp.ClientSession()
    sockets = []
    try:
        for i in range(50):
            ws = await session.ws_connect(ingest)
            await ws.send_bytes(encode(hello(f"rack-{i:02d}", f"inst-{i}", interval_s=INTERVAL_S, sent_at=time.time())))
            sockets.append(ws)
        for seq in range(1, 4):
            for ws in sockets:
                await ws.send_bytes(encode(heartbeat(seq, sampled_at=time.time())))
            await asyncio.sleep(INTERVAL_S)
        async with aiohttp.ClientSession() as api:

            async def all_online() -> bool:
                _, health = await get_json(api, f"{collector.url}/api/v1/health")
                return bool(health["nodes"]["online"] == 50)

            await wait_until(all_online, WAIT_S, "50 nodes online")
    finally:
        with contextlib.suppress(Exception):
            await session.close()  # the connector drops every socket without a close frame: the rack lost power
    await posts_reach(webhook, 1, "the grouped notification")
    await asyncio.sleep(2.0)  # any straggler group would have been sent within group_interval
    assert webhook.titles == ["[FIRING:50] node_offline"]
    message = webhook.posts[0]["message"]
    assert "rack-00" in message
    assert "and 20 more" in message  # the first 30 are listed


async def test_a_firing_alert_survives_a_collector_restart_without_a_second_notification(
    procs: ProcessGroup, webhook: Webhook, tmp_path: Path
) -> None:
    """Restart the collector while node_offline fires: still firing after, and nobody is told again."""
    rules = str(rule_file(tmp_path, webhook))
    collector = procs.collector("--alerts-config", rules)
    async with aiohttp.ClientSession() as session:
        await start_agent(procs, collector.url, session, tmp_path)
        procs.procs[-1].kill()
        await posts_reach(webhook, 1, "the offline notification")
        assert collector.proc.terminate() == 0  # SIGTERM: a clean shutdown saves the alert state
        assert (procs.data_dir / "alerts.json").is_file()

        restarted = procs.collector("--alerts-config", rules)
        firing = await live_alerts(session, restarted.url)
        assert [(a["alertname"], a["node_id"], a["state"]) for a in firing] == [("node_offline", "web-1", "firing")]
        await asyncio.sleep(3.0)  # group_wait and group_interval both passed: a re-sent message would be here
        assert webhook.titles == ["[FIRING:1] node_offline"]
        resp = await session.get(f"{restarted.url}/metrics")
        text = await resp.text()
        assert 'nodewatch_alerts{alertname="node_offline",node="web-1",severity="critical",state="firing"} 1.0' in text
