"""The agent against a hostile collector on loopback (issue 13): lies about acks, floods, forged log lines."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from aiohttp import web

from agent.config import AgentConfig
from agent.runner import Agent
from agent.session import UNSOLICITED_BURST
from agent.wire import MAX_INBOUND_BYTES
from shared.codec import encode
from shared.messages import Ack, Error

from .ingest_server import HostileLog, IngestServer, Script, running, wait_until

FLOOD = 5000  # frames a hostile collector sends; an agent that serves them all fails every bound below


def make_agent(url: str) -> Agent:
    """An agent sampling every 0.1 s whose backoff always picks the shortest delay."""
    config = AgentConfig(ingest_url=url + "/api/v1/ingest", node_id="victim", interval_s=0.1)
    return Agent(config, random_source=lambda: 0.0)


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


async def against(script: Script) -> tuple[IngestServer, Agent]:
    """Run an agent against a collector whose first connection runs ``script``; the second one is honest."""
    server = IngestServer(hostile=script)
    await server.start()
    agent = make_agent(server.url)
    try:
        async with running(agent):
            await wait_until(lambda: bool(server.log.hostile) and server.log.hostile[0].done.is_set())
            await wait_until(lambda: len(server.log.seqs) >= 3)  # back to normal on an honest connection
    finally:
        await server.stop()
    return server, agent


def agent_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.pusher"]


class TestLyingAcks:
    async def test_an_ack_above_the_highest_sent_seq_closes_1008_and_loses_nothing(self) -> None:
        """Told "I hold seq 2**63-1", the agent closes 1008, reconnects and replays every sample from seq 1."""
        server, agent = await against(ack_beyond_sent)
        [hostile] = server.log.hostile
        assert hostile.close_code == 1008
        assert agent.pusher.counters.acks_refused == 1
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
        with caplog.at_level(logging.WARNING, logger="agent.pusher"):
            server, agent = await against(script)
        assert server.log.hostile[0].close_code == 1008
        lines = agent_lines(caplog)
        assert len([line for line in lines if kind in line]) == 1
        assert len([line for line in lines if "too many unsolicited frames" in line]) == 1
        assert getattr(agent.pusher.counters, counter) == UNSOLICITED_BURST + 1
        assert agent.pusher.counters.floods == 1
        assert all("\n" not in line for line in lines)

    async def test_a_ping_flood_gets_a_bounded_number_of_pongs_then_a_close(self) -> None:
        """The agent answers at most its burst of pings, then closes 1008 instead of serving the flood."""
        server, agent = await against(ping_flood)
        [hostile] = server.log.hostile
        assert hostile.close_code == 1008
        assert hostile.pongs <= UNSOLICITED_BURST
        assert agent.pusher.counters.pings == UNSOLICITED_BURST + 1


class TestOversized:
    async def test_a_message_over_64_kib_closes_1009_and_the_agent_reconnects(self) -> None:
        """A frame past the inbound cap is refused with close 1009 before it is buffered whole; nothing is lost."""
        server, agent = await against(oversized_frame)
        assert server.log.hostile[0].close_code == 1009
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
