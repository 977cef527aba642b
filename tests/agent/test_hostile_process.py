"""The real ``nodewatch agent`` process against a hostile collector on loopback: bounded CPU, one connection.

Every connection the collector accepts floods text frames or pings as fast as the socket takes
them, or acks a seq the agent never sent (issue 13). The agent must close 1008 and back off long
(at least 60 s, shared/retry.py's 1008 row) instead of reconnecting into the next flood every
second, and a flood must cost it one budget's parsing, not a core. Not here: the agent's counters
and the reconnect after the backoff (``test_hostile_collector.py``, in process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from pathlib import Path

import pytest
from aiohttp import web

from shared.codec import encode
from shared.messages import Ack
from tests.support.processes import ProcessGroup

from .ingest_server import HostileLog, IngestServer, Script, wait_until

WINDOW_S = 4.0  # long enough for the old agent to reconnect three times or more (it did every ~1 s)
# CPU seconds the agent may use over the window: its own sampling at 10 Hz is ~1 % of a core; before this
# bound the text flood cost it 38-49 % (over 1.5 s of 4), a ping flood as much.
MAX_CPU_S = 0.8
_RETRY = re.compile(r"retrying in ([0-9.]+) s")


async def endless_text(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    """Ack the hello, then text frames with a forged log line in them, until the agent hangs up."""
    await ws.send_bytes(encode(Ack(seq=0)))
    with contextlib.suppress(ConnectionError):
        while not ws.closed:
            await ws.send_str("spam\nWARNING agent.pusher: forged")


async def endless_pings(ws: web.WebSocketResponse, _record: HostileLog) -> None:
    """Ack the hello, then pings until the agent hangs up (yielding, so the reader sees the agent's close)."""
    await ws.send_bytes(encode(Ack(seq=0)))
    with contextlib.suppress(ConnectionError):
        while not ws.closed:
            await ws.ping(b"x")  # aiohttp does not wait for the socket to drain after a ping
            await asyncio.sleep(0)


async def ack_above(ws: web.WebSocketResponse, record: HostileLog) -> None:
    """Ack the hello, take one heartbeat, then claim to hold seq 1,000,000."""
    await ws.send_bytes(encode(Ack(seq=0)))
    await wait_until(lambda: bool(record.seqs))
    await ws.send_bytes(encode(Ack(seq=1_000_000)))


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def hostile_run(workdir: Path, script: Script) -> tuple[IngestServer, str, float]:
    """A real agent against a collector whose every connection runs ``script``: its log, CPU seconds over the window."""
    server = IngestServer(hostile=script, hostile_connections=1_000)
    await server.start()
    procs = ProcessGroup(workdir)
    try:
        url = f"http://127.0.0.1:{server.port}"
        agent = procs.agent(url, "victim", "--interval", "0.1", "--state-dir", str(workdir / "state"))
        await wait_until(lambda: server.log.connections >= 1, timeout_s=30.0)
        cpu0, started = cpu_s(agent.pid), time.monotonic()
        await asyncio.sleep(WINDOW_S)
        used_s = cpu_s(agent.pid) - cpu0
        assert time.monotonic() - started >= WINDOW_S
        await wait_until(server.log.hostile[0].done.is_set)
        return server, agent.log_text(), used_s
    finally:
        procs.close()
        await server.stop()


@pytest.mark.slow
class TestHostileCollectorProcess:
    @pytest.mark.parametrize(
        ("script", "why"),
        [
            (endless_text, "too many unsolicited frames"),
            (endless_pings, "pings"),
            (ack_above, "above the highest seq sent"),
        ],
        ids=["text-flood", "ping-flood", "ack-above-sent"],
    )
    async def test_the_agent_closes_1008_once_and_backs_off_at_least_60_s(
        self, tmp_path: Path, script: Script, why: str
    ) -> None:
        """One connection, closed 1008 by the agent, the next attempt 60 s or more away, and little CPU."""
        server, text, used_s = await hostile_run(tmp_path, script)
        assert server.log.connections == 1, text[-2000:]
        assert server.log.hostile[0].close_code == 1008
        failures = [line for line in text.splitlines() if "not connected to" in line]
        assert len(failures) == 1, failures
        assert why in failures[0]
        retry = _RETRY.search(failures[0])
        assert retry is not None
        assert float(retry.group(1)) >= 60.0
        assert "forged" not in text.replace("'spam\\nWARNING agent.pusher: forged'", "")
        assert used_s < MAX_CPU_S, f"{used_s:.2f} CPU s over {WINDOW_S:g} s"
