"""Network faults between a real agent and a real collector, injected by ``FaultProxy`` (``tests.support.processes``).

The agent (a ``nodewatch agent`` subprocess) pushes through the proxy; a
recording subscriber watches the collector directly. For each fault: the
agent notices and recovers, the collector shows the states the protocol
promises (stale after 3 intervals of silence, offline after 10, online when
heartbeats come back), and no sample is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.support.processes import (
    CollectorProc,
    FaultProxy,
    ProcessGroup,
    Spawned,
    StateRecorder,
    agent_connections,
    gaps,
    health,
    node,
    wait_until,
)

INTERVAL_S = 0.2
STALE_S = 3 * INTERVAL_S
OFFLINE_S = 10 * INTERVAL_S
# What "at the right time" allows for: a subscriber update is batched (100 ms), the liveness
# task wakes on time but the machine has two busy cores.
LATE_S = 1.0
RECOVER_S = 15.0
NODE = "net-a"


@dataclass
class Rig:
    """A collector, a proxy in front of it, one agent behind the proxy, and a recording subscriber."""

    collector: CollectorProc
    proxy: FaultProxy
    agent: Spawned
    recorder: StateRecorder
    session: aiohttp.ClientSession

    async def last_seq(self) -> int:
        """The node's last_seq at the collector (0 before its first hello)."""
        body = await node(self.session, self.collector.url, NODE)
        return 0 if body is None else int(body["status"]["last_seq"])

    async def wait_samples(self, count: int, timeout_s: float = 20.0) -> None:
        """Wait until ``count`` more samples than now are held."""
        target = await self.last_seq() + count

        async def enough() -> bool:
            return await self.last_seq() >= target

        await wait_until(enough, timeout_s, f"{NODE} to reach seq {target}")

    async def wait_state(self, state: str, since: float, timeout_s: float) -> float:
        """Wait until the subscriber sees the node enter ``state`` after ``since``; when it saw it."""

        async def seen() -> bool:
            return self.recorder.first(NODE, state, since) is not None

        await wait_until(seen, timeout_s, f"{NODE} to become {state}")
        transition = self.recorder.first(NODE, state, since)
        assert transition is not None
        return transition.seen_mono

    async def finish(self) -> dict[str, Any]:
        """Stop the agent cleanly and return the node's full record: no sample may be missing."""
        assert self.agent.terminate() == 0, self.agent.log_text()[-2000:]
        body: Any = await node(self.session, self.collector.url, NODE)
        assert gaps(body["history"]["seq"]) == [], "samples lost"
        assert body["status"]["missing_samples"] == 0
        assert body["status"]["dropped_samples"] == 0
        return dict(body)


@pytest.fixture
async def rig(procs: ProcessGroup, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """Everything running, the agent connected through the proxy and 5 samples in."""
    ws_heartbeat_s = getattr(request, "param", 0.5)
    collector = await asyncio.to_thread(procs.collector)
    proxy = FaultProxy(collector.port)
    await proxy.start()
    agent = procs.agent(proxy.url, NODE, "--interval", str(INTERVAL_S), "--ws-heartbeat", str(ws_heartbeat_s))
    try:
        async with aiohttp.ClientSession() as session, StateRecorder(collector.url) as recorder:
            rig = Rig(collector, proxy, agent, recorder, session)
            await rig.wait_samples(5, timeout_s=30)
            yield rig
    finally:
        agent.kill()
        await proxy.close()


def assert_on_time(rig: Rig, fault_at: float) -> None:
    """Stale and offline were entered when the rules say, judged by the subscriber and by the stamps."""
    stale = rig.recorder.first(NODE, "stale", fault_at)
    offline = rig.recorder.first(NODE, "offline", fault_at)
    assert stale is not None
    assert offline is not None
    # Seen by the subscriber: not before the silence could have lasted long enough, not much later.
    assert STALE_S - INTERVAL_S <= stale.seen_mono - fault_at <= STALE_S + LATE_S
    assert OFFLINE_S - INTERVAL_S <= offline.seen_mono - fault_at <= OFFLINE_S + LATE_S
    # Stamped by the collector: exactly 3 and 10 intervals after the last heartbeat.
    assert stale.last_seen_at is not None
    assert stale.state_since_at - stale.last_seen_at == pytest.approx(STALE_S, abs=0.05)
    assert offline.state_since_at - stale.last_seen_at == pytest.approx(OFFLINE_S, abs=0.05)
    assert stale.reason == offline.reason == "no_heartbeat"


class TestStall:
    """No byte moves for 3 s, on the open connection and on every new one."""

    async def test_stale_offline_online_and_nothing_lost(self, rig: Rig) -> None:
        """The node goes stale then offline on time, comes back online after the stall, and no sample is lost."""
        fault_at = time.monotonic()
        rig.proxy.stall()
        await rig.wait_state("offline", fault_at, OFFLINE_S + 5)
        await asyncio.sleep(1.0)
        rig.proxy.resume()
        healed_at = time.monotonic()
        await rig.wait_state("online", healed_at, RECOVER_S)
        assert rig.recorder.states(NODE, fault_at) == ["stale", "offline", "online"]
        assert_on_time(rig, fault_at)
        await rig.wait_samples(3)
        await rig.finish()
        # The agent gave up on the stalled connection (ping timeout) and connected again.
        assert agent_connections(rig.agent.log_text()) >= 2


class TestHalfOpen:
    """One side of the connection is reset; the other stays open and hears nothing."""

    @pytest.mark.parametrize("rig", [3.0], indirect=True)
    async def test_collector_side_gone_agent_side_silent(self, rig: Rig) -> None:
        """The collector loses the socket at once (connected=false), the agent notices by its ping timeout."""
        fault_at = time.monotonic()
        rig.proxy.half_open("upstream")
        offline_seen = await rig.wait_state("offline", fault_at, OFFLINE_S + 5)
        back_seen = await rig.wait_state("online", offline_seen, RECOVER_S)
        assert rig.recorder.states(NODE, fault_at) == ["stale", "offline", "online"]
        assert_on_time(rig, fault_at)
        stale = rig.recorder.first(NODE, "stale", fault_at)
        assert stale is not None
        assert stale.connected is False, "the collector should see the reset socket as closed"
        # The agent's ping (every 3 s, pong within 1.5 s) finds the dead link; then backoff.
        assert back_seen - fault_at <= 3.0 * 1.5 + 1.0 + LATE_S + 2.0
        await rig.wait_samples(3)
        await rig.finish()
        assert agent_connections(rig.agent.log_text()) == 2

    async def test_agent_side_gone_collector_side_lingers(self, rig: Rig) -> None:
        """The agent reconnects at once and the collector drops the lingering old socket: one connection, no offline."""
        fault_at = time.monotonic()
        rig.proxy.half_open("client")

        async def one_agent() -> bool:
            return (
                agent_connections(rig.agent.log_text()) == 2
                and (await health(rig.session, rig.collector.url))["agents_connected"] == 1
            )

        await wait_until(one_agent, RECOVER_S, "the agent to reconnect and the old socket to be dropped")
        await rig.wait_samples(5)
        assert "offline" not in rig.recorder.states(NODE, fault_at)
        await rig.finish()


class TestSlowLink:
    """Both directions paced to 6 KB/s for 4 s: about twice what one agent at 5 samples/s needs."""

    async def test_slow_but_alive_link_neither_flaps_nor_loses(self, rig: Rig) -> None:
        """A slow link is not a dead one: the node stays online, the agent keeps its connection, nothing is lost."""
        fault_at = time.monotonic()
        before = await rig.last_seq()
        rig.proxy.bytes_per_s = 6000.0
        await asyncio.sleep(4.0)
        during = await rig.last_seq()
        rig.proxy.bytes_per_s = None
        await rig.wait_samples(3)
        assert rig.recorder.states(NODE, fault_at) == []
        assert during - before >= 4.0 / INTERVAL_S / 2, "samples should keep flowing over a slow link"
        await rig.finish()
        assert agent_connections(rig.agent.log_text()) == 1


class TestResetMidFrame:
    """Half of one websocket frame reaches the collector, then both sides get a TCP reset."""

    async def test_truncated_frame_then_reset(self, rig: Rig) -> None:
        """The collector drops the torn connection, the agent reconnects and replays, the node never goes offline."""
        fault_at = time.monotonic()
        rig.proxy.reset_mid_frame()

        async def reconnected() -> bool:
            return agent_connections(rig.agent.log_text()) == 2

        await wait_until(reconnected, RECOVER_S, "the agent to reconnect")
        await rig.wait_samples(5)
        assert "offline" not in rig.recorder.states(NODE, fault_at)
        assert rig.collector.proc.alive()
        assert (await health(rig.session, rig.collector.url))["agents_connected"] == 1
        await rig.finish()
