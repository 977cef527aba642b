"""The agent against a hostile collector on loopback (issue 13): lies about acks, floods, forged log lines.

In process, so a test can read the agent's counters and outcomes. The long backoff after the agent's
own 1008 (at least 60 s) is replaced by a short one where a test needs the reconnect that follows;
``test_hostile_process.py`` runs the real process with the real backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from aiohttp import web

from agent.backoff import Backoff, Outcome
from agent.config import AgentConfig
from agent.inbound import InboundLimits
from agent.runner import Agent
from agent.session import UNSOLICITED_BURST
from agent.wire import MAX_INBOUND_BYTES
from shared.codec import encode
from shared.messages import Ack, Error

from .ingest_server import HostileLog, IngestServer, Script, running, wait_until

FLOOD = 5000  # frames a hostile collector sends; an agent that serves them all fails every bound below


# Any backoff, the long one included, is a tenth of a second: the test sees the reconnect.
SHORT = Backoff(cap_s=0.05, long_cap_s=0.1, random=lambda: 0.0)


def make_agent(url: str, retries: list[tuple[float, Outcome]], backoff: Backoff | None = SHORT) -> Agent:
    """An agent sampling every 0.1 s that records every retry it schedules (delay, outcome)."""
    config = AgentConfig(ingest_url=url + "/api/v1/ingest", node_id="victim", interval_s=0.1)
    return Agent(
        config,
        random_source=lambda: 0.0,
        backoff=backoff,
        on_retry=lambda delay_s, outcome: retries.append((delay_s, outcome)),
    )


async def flood(ws: web.WebSocketResponse, send: Script) -> None:
    """Ack the hello, then run ``send`` FLOOD times or until the agent hangs up."""
    await ws.send_bytes(encode(Ack(seq=0)))
    with contextlib.suppress(ConnectionError):
        for _ in range(FLOOD):
            if ws.closed:
                return
            await send(ws, HostileLog())


async def text_flood(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    async def one(ws: web.WebSocketResponse, _: HostileLog) -> None:
        await ws.send_str("spam\nWARNING agent.pusher: forged")

    await flood(ws, one)


async def error_flood(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    frame = encode(Error(reason="schema", detail="no"))

    async def one(ws: web.WebSocketResponse, _: HostileLog) -> None:
        await ws.send_bytes(frame)

    await flood(ws, one)


async def ping_flood(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    async def one(ws: web.WebSocketResponse, _: HostileLog) -> None:
        await ws.ping(b"x")

    await flood(ws, one)


async def ack_beyond_sent(ws: web.WebSocketResponse, record: HostileLog) -> None:
    """Take three heartbeats without acking them, then claim to hold seq 2**63-1 (finding 1's lie)."""
    await ws.send_bytes(encode(Ack(seq=0)))
    await wait_until(lambda: len(record.seqs) >= 3)
    await ws.send_bytes(encode(Ack(seq=2**63 - 1)))


async def forged_lines(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    """An error and a close whose texts carry newlines and a fake log line."""
    await ws.send_bytes(encode(Ack(seq=0)))
    forged = "schema\n2026-12-02 10:00:00 CRITICAL agent.pusher: collector says rm -rf"
    await ws.send_bytes(encode(Error(reason=forged[:64], detail=forged)))
    await ws.close(code=1011, message=b"bye\nCRITICAL forged")


async def oversized_frame(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    """Ack the hello, then send one binary message past the agent's 64 KiB inbound cap."""
    await ws.send_bytes(encode(Ack(seq=0)))
    await ws.send_bytes(b"\x00" * (MAX_INBOUND_BYTES + 1))


async def against(script: Script, retries: list[tuple[float, Outcome]] | None = None) -> tuple[IngestServer, Agent]:
    """Run an agent against a collector whose first connection runs ``script``; the second one is honest."""
    server = IngestServer(hostile=script)
    await server.start()
    agent = make_agent(server.url, [] if retries is None else retries)
    try:
        async with running(agent):
            await wait_until(lambda: bool(server.log.hostile) and server.log.hostile[0].done.is_set())
            await wait_until(lambda: len(server.log.seqs) >= 3)  # back to normal on an honest connection
    finally:
        await server.stop()
    return server, agent


def agent_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.pusher"]


def first_retry(retries: list[tuple[float, Outcome]]) -> Outcome:
    """The outcome of the hostile connection, which the agent ended itself for the collector's fault."""
    _, outcome = retries[0]
    assert outcome.peer_fault
    assert outcome.refused
    assert outcome.min_delay_s == 60.0  # shared.retry's 1008 row
    return outcome


class TestLyingAcks:
    async def test_an_ack_above_the_highest_sent_seq_closes_1008_and_loses_nothing(self) -> None:
        """Told "I hold seq 2**63-1", the agent closes 1008, backs off long, reconnects and replays from seq 1."""
        retries: list[tuple[float, Outcome]] = []
        server, agent = await against(ack_beyond_sent, retries)
        [hostile] = server.log.hostile
        assert hostile.close_code == 1008
        assert agent.pusher.counters.acks_refused == 1
        assert first_retry(retries).close_code == 1008
        assert len(server.log.hellos) == 2
        # The honest collector held nothing, so the agent replayed from the start: nothing was forgotten.
        seqs = server.log.seqs
        assert seqs[0] == 1
        assert seqs == list(range(1, len(seqs) + 1))


class TestFloods:
    @pytest.mark.parametrize(
        ("script", "kind", "counter"),
        [(text_flood, "text frame", "text_frames"), (error_flood, "reported", "error_frames")],
    )
    async def test_a_frame_flood_costs_a_few_log_lines_and_ends_the_connection(
        self, caplog: pytest.LogCaptureFixture, script: Script, kind: str, counter: str
    ) -> None:
        """5,000 text or error frames give one log line, one flood line and a 1008 close, then a reconnect."""
        retries: list[tuple[float, Outcome]] = []
        with caplog.at_level(logging.WARNING, logger="agent.pusher"):
            server, agent = await against(script, retries)
        assert server.log.hostile[0].close_code == 1008
        lines = agent_lines(caplog)
        assert len([line for line in lines if kind in line]) == 1
        assert len([line for line in lines if "too many unsolicited frames" in line]) == 1
        assert getattr(agent.pusher.counters, counter) == UNSOLICITED_BURST + 1
        assert agent.pusher.counters.floods == 1
        assert agent.pusher.counters.violation_closes == 1
        assert first_retry(retries).close_code == 1008
        assert all("\n" not in line for line in lines)

    async def test_a_ping_flood_gets_ten_pongs_then_a_close(self) -> None:
        """The agent answers at most its ping burst (10), then closes 1008 and backs off long."""
        retries: list[tuple[float, Outcome]] = []
        server, agent = await against(ping_flood, retries)
        [hostile] = server.log.hostile
        assert hostile.close_code == 1008
        assert hostile.pongs <= InboundLimits().ping_burst
        assert agent.pusher.counters.pings == InboundLimits().ping_burst
        assert agent.pusher.counters.violation_closes == 1
        assert "pings" in first_retry(retries).reason

    async def test_after_its_own_1008_the_agent_waits_at_least_60_s(self) -> None:
        """With the real backoff, the next attempt after a text flood is 60 s to 5 min away: no second connection."""
        retries: list[tuple[float, Outcome]] = []
        server = IngestServer(hostile=text_flood)
        await server.start()
        agent = make_agent(server.url, retries, backoff=Backoff(random=lambda: 0.0))
        try:
            async with running(agent):
                await wait_until(lambda: bool(retries))
                await asyncio.sleep(0.5)  # a short backoff would have reconnected by now
        finally:
            await server.stop()
        [(delay_s, outcome)] = retries
        assert delay_s >= 60.0
        assert outcome.peer_fault
        assert server.log.connections == 1


class TestOversized:
    async def test_a_message_over_64_kib_closes_1009_and_the_agent_reconnects(self) -> None:
        """A frame past the inbound cap is refused with close 1009 before it is buffered whole; nothing is lost."""
        retries: list[tuple[float, Outcome]] = []
        server, agent = await against(oversized_frame, retries)
        assert server.log.hostile[0].close_code == 1009
        assert first_retry(retries).close_code == 1009
        assert agent.backlog.dropped == 0
        seqs = server.log.seqs
        assert seqs == list(range(1, len(seqs) + 1))


class TestPeerText:
    async def test_newlines_from_the_collector_cannot_forge_log_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        """The collector's error reason, detail and close reason are logged with %r: every line stays one line."""
        with caplog.at_level(logging.DEBUG, logger="agent.pusher"):
            await against(forged_lines)
            await asyncio.sleep(0)
        lines = agent_lines(caplog)
        reported = [line for line in lines if "reported" in line]
        assert reported
        assert "'schema\\n2026-12-02 10:00:00 CRITICAL" in reported[0]
        closed = [line for line in lines if "code 1011" in line]
        assert closed
        assert "'bye\\nCRITICAL forged'" in closed[0]
        assert all("\n" not in line for line in lines)
