"""The agent against a real ingest endpoint on loopback: hello, heartbeats, restarts, stalls, refusals."""

from __future__ import annotations

import asyncio
import logging
import statistics

import pytest

from agent.config import AgentConfig
from agent.pusher import Outcome
from agent.runner import Agent
from shared.retry import LONG_DELAY_S

from .ingest_server import IngestServer, StallingProxy, running, wait_until


def make_agent(url: str, **overrides: object) -> tuple[Agent, list[tuple[float, Outcome]]]:
    """An agent with a 0.1 s interval and a fixed random source, recording every scheduled retry."""
    retries: list[tuple[float, Outcome]] = []
    settings: dict[str, object] = {"ingest_url": url + "/api/v1/ingest", "node_id": "test-node", "interval_s": 0.1}
    random_value = overrides.pop("random_value", 0.2)
    settings.update(overrides)
    config = AgentConfig(**settings)  # type: ignore[arg-type]
    agent = Agent(
        config,
        random_source=lambda: float(random_value),  # type: ignore[arg-type]
        on_retry=lambda delay, outcome: retries.append((delay, outcome)),
    )
    return agent, retries


def assert_complete(seqs: list[int]) -> None:
    """Every seq from 1 to the highest arrived at least once."""
    assert seqs
    assert set(range(1, max(seqs) + 1)) <= set(seqs)


class TestPushing:
    async def test_hello_then_heartbeats_at_the_interval(self, ingest_server: IngestServer) -> None:
        """The hello comes first with the facts, then heartbeats 1, 2, 3... sampled 0.1 s apart."""
        agent, _ = make_agent(ingest_server.url)
        async with running(agent):
            await wait_until(lambda: len(ingest_server.log.seqs) >= 12)
        hello = ingest_server.log.hellos[0]
        assert hello.node_id == "test-node"
        assert hello.interval_s == 0.1
        assert hello.dropped_samples == 0
        assert hello.facts.memory_total_bytes > 0
        seqs = ingest_server.log.seqs
        assert seqs == list(range(1, len(seqs) + 1))
        gaps = [b - a for a, b in zip(ingest_server.log.sampled_at, ingest_server.log.sampled_at[1:], strict=False)]
        assert 0.08 <= statistics.median(gaps) <= 0.15

    async def test_clean_stop_closes_with_1000(self, ingest_server: IngestServer) -> None:
        """Stopping the agent sends close code 1000, so the collector can mark it offline at once."""
        agent, _ = make_agent(ingest_server.url)
        async with running(agent):
            await wait_until(lambda: len(ingest_server.log.seqs) >= 2)
        await wait_until(lambda: bool(ingest_server.log.close_codes), timeout_s=2.0)
        assert ingest_server.log.close_codes == [1000]
        assert agent.pusher.last_outcome is not None
        assert agent.pusher.last_outcome.close_code == 1000

    async def test_collector_restart_loses_nothing(self, ingest_server: IngestServer) -> None:
        """Samples taken while the collector is down are replayed in order after it restarts: no gap."""
        agent, retries = make_agent(ingest_server.url)
        log = ingest_server.log
        async with running(agent):
            await wait_until(lambda: len(log.seqs) >= 5)
            port = ingest_server.port
            await ingest_server.stop()
            down_at_seq = agent.seq
            await wait_until(lambda: agent.seq >= down_at_seq + 5)
            arrived_before = len(log.seqs)
            await ingest_server.start(port)
            await wait_until(lambda: len(log.hellos) == 2 and log.held.get(agent.instance_id, 0) >= agent.seq > 15)
        assert retries
        assert retries[0][1].close_code == 1001
        after_restart = log.seqs[arrived_before:]
        assert after_restart == sorted(after_restart)
        assert_complete(log.seqs)
        assert log.hellos[1].agent_instance_id == log.hellos[0].agent_instance_id

    async def test_overflow_is_counted_and_reported(self, ingest_server: IngestServer) -> None:
        """With a 3-sample backlog, samples lost during an outage are counted in the next hello."""
        agent, _ = make_agent(ingest_server.url, backlog_samples=3)
        log = ingest_server.log
        async with running(agent):
            await wait_until(lambda: len(log.seqs) >= 3)
            port = ingest_server.port
            await ingest_server.stop()
            mark = agent.seq
            await wait_until(lambda: agent.seq >= mark + 8)
            await ingest_server.start(port)
            await wait_until(lambda: len(log.hellos) == 2)
        assert log.hellos[1].dropped_samples >= 5
        assert log.hellos[1].dropped_samples == agent.backlog.dropped

    async def test_stalled_collector_is_detected_and_left(self, ingest_server: IngestServer) -> None:
        """A collector that stops answering without closing is dropped after ~1.5 heartbeats, then re-dialled."""
        proxy = StallingProxy(ingest_server.port)
        await proxy.start()
        agent, retries = make_agent(proxy.url, ws_heartbeat_s=0.3)
        log = ingest_server.log
        try:
            async with running(agent):
                await wait_until(lambda: len(log.seqs) >= 5)
                proxy.stall()
                await wait_until(lambda: bool(retries), timeout_s=5.0)
                await wait_until(lambda: len(log.hellos) == 2 and log.held.get(agent.instance_id, 0) >= agent.seq > 12)
        finally:
            await proxy.close()
        assert "PONG" in retries[0][1].reason or "Timeout" in retries[0][1].reason
        assert not retries[0][1].refused
        assert_complete(log.seqs)


class TestSilence:
    async def test_a_server_that_never_answers_the_upgrade_times_out(self) -> None:
        """A TCP listener that accepts and says nothing is given up after connect_timeout_s, then dialled again."""
        accepted: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            agent, retries = make_agent(f"ws://127.0.0.1:{port}", connect_timeout_s=0.3, random_value=0.0)
            async with running(agent):
                await wait_until(lambda: len(accepted) >= 2)
        finally:
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()
        assert retries[0][1].reason == "no answer within 0.3 s"
        assert not retries[0][1].refused

    async def test_stop_while_the_collector_stalls_still_ends_within_2s(self, ingest_server: IngestServer) -> None:
        """Stopping while the collector is frozen ends within 2 s: a short final-ack wait, then a bounded close."""
        proxy = StallingProxy(ingest_server.port)
        await proxy.start()
        agent, _ = make_agent(proxy.url)
        try:
            async with running(agent):  # requires the agent to finish within 2 s of the stop
                await wait_until(lambda: len(ingest_server.log.seqs) >= 3)
                proxy.stall()
                await asyncio.sleep(0.3)  # samples sent into the stall, never acked
        finally:
            await proxy.close()
        assert agent.pusher.last_outcome is not None
        assert agent.pusher.last_outcome.close_code == 1000
        assert len(agent.backlog) > 0  # the unacked samples were kept, not forgotten

    async def test_unacked_hello_times_out_and_retries(self) -> None:
        """A collector that accepts the hello but never acks it is left after the timeout and dialled again."""
        server = IngestServer(mute=True)
        await server.start()
        try:
            agent, retries = make_agent(server.url, connect_timeout_s=0.3)
            async with running(agent):
                await wait_until(lambda: len(server.log.hellos) >= 2)
        finally:
            await server.stop()
        assert retries[0][1].reason == "collector did not ack the hello in time"
        assert not retries[0][1].refused
        assert len(agent.backlog) == agent.seq  # nothing was acked, so nothing was forgotten


class TestRefusals:
    async def test_401_backs_off_long(self) -> None:
        """A wrong token gets HTTP 401 and the next attempt is scheduled between the table's 60 s and 5 min."""
        server = IngestServer(tokens=frozenset({"right"}))
        await server.start()
        try:
            agent, retries = make_agent(server.url, token="wrong", random_value=0.5)
            async with running(agent):
                await wait_until(lambda: bool(retries))
        finally:
            await server.stop()
        delay, outcome = retries[0]
        assert "401" in outcome.reason
        assert outcome.refused
        assert delay == pytest.approx(LONG_DELAY_S + 0.5 * (300.0 - LONG_DELAY_S))
        assert agent.pusher.backoff.last_was_long
        assert server.log.hellos == []

    async def test_right_token_is_accepted(self) -> None:
        """The bearer token is sent on the upgrade request."""
        server = IngestServer(tokens=frozenset({"right"}))
        await server.start()
        try:
            agent, retries = make_agent(server.url, token="right")
            async with running(agent):
                await wait_until(lambda: len(server.log.seqs) >= 2)
        finally:
            await server.stop()
        assert retries == []

    async def test_1008_close_backs_off_long_and_logs_error(self, caplog: pytest.LogCaptureFixture) -> None:
        """An Error frame is logged with its reason and a 1008 close leads to the long backoff (60 s at least)."""
        server = IngestServer(refuse_hello=True)
        await server.start()
        try:
            agent, retries = make_agent(server.url, random_value=0.0)
            with caplog.at_level(logging.WARNING, logger="agent.pusher"):
                async with running(agent):
                    await wait_until(lambda: bool(retries))
        finally:
            await server.stop()
        delay, outcome = retries[0]
        assert outcome.close_code == 1008
        assert outcome.refused
        assert delay == LONG_DELAY_S
        assert "reported 'schema': 'refused by test'" in caplog.text
