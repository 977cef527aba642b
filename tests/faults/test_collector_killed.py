"""Fault: the collector is killed with SIGKILL and restarted on the same port while real agents run.

Agents are real ``nodewatch agent`` subprocesses; the collector is a real
``nodewatch collector`` subprocess. What must hold: every agent reconnects
within the backoff cap, and the samples taken while the collector was down
reach the new collector's history without a gap, unless the agent's backlog
overflowed, in which case the loss is reported (``dropped_samples``), never silent.
And, with the durable store of issue 12: the samples acked before the kill survive it, so every node's history in the
new process is gap-free from seq 1, and a node whose agent died during the outage
comes back in the snapshot and goes offline with its last sample.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from typing import Any

import aiohttp

from agent.backoff import CAP_S
from tests.support.processes import ProcessGroup, StateRecorder, gaps, kill_and_restart, last_seqs, node, wait_until

INTERVAL_S = 0.2
DOWN_S = 1.5  # long enough for several samples to pile up in each agent's backlog
# docs/protocol.md 4.1: a collector acks at least every 5 s. Samples older than this at the kill
# have been acked, so the agent has dropped them and only the collector's store can bring them back.
ACK_WAIT_S = 5.0 * 1.5
IN_FLIGHT_S = 0.5  # lets a heartbeat sent just before SIGSTOP land before the collector is read
OFFLINE_AFTER_INTERVALS = 10  # docs/protocol.md, liveness: offline after 10 intervals without a heartbeat


class TestCollectorKilled:
    """kill -9 of the collector while agents push."""

    async def test_agents_reconnect_and_history_has_no_gap(self, procs: ProcessGroup) -> None:
        """Every agent is back within the backoff cap and the new collector holds every seq from the outage on."""
        collector = procs.collector()
        node_ids = [f"kill-{i}" for i in range(3)]
        agents = [procs.agent(collector.url, n, "--interval", str(INTERVAL_S)) for n in node_ids]
        async with aiohttp.ClientSession() as session:

            async def all_sampling() -> bool:
                seqs = await last_seqs(session, collector.url)
                return all(seqs.get(n, 0) >= 5 for n in node_ids)

            await wait_until(all_sampling, 30, "every agent to push 5 samples")
            restart = await kill_and_restart(procs, session, collector, down_s=DOWN_S, interval_s=INTERVAL_S)
            held, slack, restarted_at = restart.held, restart.slack, restart.listening_mono

            async def all_back() -> bool:
                seqs = await last_seqs(session, collector.url)
                return all(seqs.get(n, 0) > held[n] + DOWN_S / INTERVAL_S + 3 for n in node_ids)

            await wait_until(all_back, CAP_S, "every agent to reconnect and replay its backlog")
            reconnect_s = time.monotonic() - restarted_at
            for agent in agents:
                assert agent.terminate() == 0, agent.log_text()[-2000:]
            for n in node_ids:
                body: Any = await node(session, collector.url, n)
                seqs = body["history"]["seq"]
                assert gaps(seqs) == [], f"{n}: gaps in the new collector's history"
                assert seqs[0] <= held[n] + slack, f"{n}: old collector held {held[n]}, new one starts at {seqs[0]}"
                assert body["status"]["missing_samples"] == 0
                assert body["status"]["dropped_samples"] == 0
        assert reconnect_s < CAP_S
        for agent in agents:
            assert "sample(s) were not acked" in agent.log_text()

    async def test_backlog_overflow_is_reported_not_silent(self, procs: ProcessGroup) -> None:
        """An agent whose 3-sample backlog overflows during the outage reports the drop, and it matches the gap."""
        collector = procs.collector()
        agent = procs.agent(collector.url, "overflow", "--interval", str(INTERVAL_S), "--backlog-samples", "3")
        async with aiohttp.ClientSession() as session:

            async def sampling() -> bool:
                return (await last_seqs(session, collector.url)).get("overflow", 0) >= 3

            await wait_until(sampling, 30, "the agent to push 3 samples")
            restart = await kill_and_restart(procs, session, collector, down_s=DOWN_S, interval_s=INTERVAL_S)
            held, slack = restart.held, restart.slack

            async def reported() -> bool:
                body = await node(session, collector.url, "overflow")
                return body is not None and len(body["history"]["seq"]) >= 3

            await wait_until(reported, CAP_S, "the agent to reconnect")
            body: Any = await node(session, collector.url, "overflow")
        agent.terminate()
        seqs = body["history"]["seq"]
        dropped = body["status"]["dropped_samples"]
        gap = seqs[0] - 1 - held["overflow"]
        assert dropped > 0, "the agent dropped samples but the collector does not show it"
        assert gap > 0, "a 3-sample backlog cannot have held the whole outage"
        assert abs(dropped - gap) <= slack + 1, f"dropped_samples={dropped} but the history gap is {gap}"
        assert gaps(seqs) == []

    async def test_history_is_gap_free_from_seq_1_after_a_kill(self, procs: ProcessGroup) -> None:
        """After kill -9 and a restart, each node's history holds every sample its agent took, from seq 1 on."""
        collector = procs.collector()
        node_ids = [f"durable-{i}" for i in range(2)]
        agents = [procs.agent(collector.url, n, "--interval", str(INTERVAL_S)) for n in node_ids]
        acked_seq = math.ceil(ACK_WAIT_S / INTERVAL_S)
        async with aiohttp.ClientSession() as session:

            async def acked_for_a_while() -> bool:
                seqs = await last_seqs(session, collector.url)
                return all(seqs.get(n, 0) >= acked_seq for n in node_ids)

            await wait_until(acked_for_a_while, 60, f"every agent to push {acked_seq} samples, some of them acked")
            held = (await kill_and_restart(procs, session, collector, down_s=DOWN_S, interval_s=INTERVAL_S)).held

            async def all_back() -> bool:
                seqs = await last_seqs(session, collector.url)
                return all(seqs.get(n, 0) > held[n] + DOWN_S / INTERVAL_S + 3 for n in node_ids)

            await wait_until(all_back, CAP_S, "every agent to reconnect and replay its backlog")
            for agent in agents:
                assert agent.terminate() == 0, agent.log_text()[-2000:]
            for n in node_ids:
                body: Any = await node(session, collector.url, n)
                seqs = body["history"]["seq"]
                last = body["status"]["last_seq"]
                assert seqs == list(range(1, last + 1)), (
                    f"{n}: the old collector held seq 1..{held[n]}; the new one holds {seqs[0]}..{seqs[-1]}"
                    f" with gaps {gaps(seqs)}"
                )
                assert body["status"]["missing_samples"] == 0
                assert body["status"]["dropped_samples"] == 0

    async def test_agent_that_died_during_the_outage_is_offline_with_its_last_sample(self, procs: ProcessGroup) -> None:
        """A node whose agent died while the collector was down is in a viewer's snapshot, then offline."""
        collector = procs.collector()
        victim = procs.agent(collector.url, "dies", "--interval", str(INTERVAL_S))
        async with aiohttp.ClientSession() as session:

            async def sampling() -> bool:
                return (await last_seqs(session, collector.url)).get("dies", 0) >= 5

            await wait_until(sampling, 30, "the agent to push 5 samples")
            victim.signal(signal.SIGSTOP)  # from here on it sends nothing, and it never comes back
            await asyncio.sleep(IN_FLIGHT_S)
            held = (await kill_and_restart(procs, session, collector, down_s=DOWN_S, interval_s=INTERVAL_S)).held
            victim.kill()
            async with StateRecorder(collector.url) as viewer:
                assert viewer.states("dies"), "the new collector's snapshot does not list the node"
                offline_within_s = OFFLINE_AFTER_INTERVALS * INTERVAL_S + 5.0  # + a cold start on 2 busy cores
                await wait_until(lambda: _is(viewer, "dies", "offline"), offline_within_s, "the dead node offline")
            body: Any = await node(session, collector.url, "dies")
        assert body["status"]["state"] == "offline"
        assert body["status"]["last_seen_at"] is not None
        assert body["last_sample"] is not None
        # The store may lose what it had not committed (it never acked that), never what it acked.
        assert 1 <= body["last_sample"]["seq"] <= held["dies"]
        assert body["status"]["last_seq"] == body["last_sample"]["seq"]


async def _is(viewer: StateRecorder, node_id: str, state: str) -> bool:
    """Whether the last state ``viewer`` saw ``node_id`` enter is ``state``."""
    states = viewer.states(node_id)
    return bool(states) and states[-1] == state
