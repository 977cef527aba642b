"""Fuzzing a live collector over the network: hypothesis frames and mutations of valid ones, and HTTP paths.

A real collector subprocess takes garbage on ingest and subscribe, and odd
paths and query strings over HTTP, while a real agent and a real subscriber
(both subprocesses) use it properly. Every offender is closed with a
documented code (docs/protocol.md section 7), nothing gets a 5xx, and the
well-behaved pair never notices. ``bench/fuzz.py --url`` is the 10,000-frame run.
"""

from __future__ import annotations

import asyncio
import random
import string
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import hypothesis.strategies as st
import yarl
from hypothesis import HealthCheck, given, settings

from bench.fuzz import MUTATORS
from shared.codec import encode
from shared.errors import CloseCode
from shared.messages import HistoryRequest
from tests.support.messages import heartbeat, hello
from tests.support.processes import (
    ProcessGroup,
    agent_connections,
    gaps,
    get_json,
    node,
    protocol_errors,
    wait_until,
)

# Codes the collector may close a fuzzing connection with; 1011 (a collector bug) is not among them.
DOCUMENTED_CLOSES = {
    int(CloseCode.NORMAL),
    int(CloseCode.UNSUPPORTED_DATA),
    int(CloseCode.POLICY_VIOLATION),
    int(CloseCode.MESSAGE_TOO_BIG),
    int(CloseCode.DUPLICATE_NODE),
    int(CloseCode.CAPACITY_REACHED),
}
CLOSE_WAIT_S = 0.3  # a refused frame is closed within milliseconds on loopback
FUZZ_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
VICTIM = "victim"

VALID_INGEST = [encode(hello("fuzz-node", "fuzz-inst", interval_s=60.0)), encode(heartbeat(1)), encode(heartbeat(2))]
VALID_SUBSCRIBE = [encode(HistoryRequest(node_id=VICTIM)), encode(HistoryRequest(node_id="nope"))]


@dataclass
class Outcomes:
    """How each fuzzing connection ended."""

    endings: dict[str, int] = field(default_factory=dict)

    def add(self, ending: str) -> None:
        """Count one ending."""
        self.endings[ending] = self.endings.get(ending, 0) + 1


def mutated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """A valid frame passed through one of bench/fuzz.py's mutators (bit flips, truncation, splicing...)."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        rng = random.Random(draw(st.integers(0, 2**32)))
        frame, other = draw(st.sampled_from(valid)), draw(st.sampled_from(valid))
        return MUTATORS[draw(st.sampled_from(sorted(MUTATORS)))](rng, frame, other)

    return build()


def frames(valid: list[bytes]) -> st.SearchStrategy[list[bytes | str]]:
    """One to three frames: raw bytes, mutated valid frames, valid frames, now and then a text frame."""
    one: st.SearchStrategy[bytes | str] = st.one_of(
        st.binary(max_size=300), mutated(valid), mutated(valid), st.sampled_from(valid), st.text(max_size=40)
    )
    return st.lists(one, min_size=1, max_size=3)


async def fuzz_connection(url: str, sent: list[bytes | str], read_first: bool) -> str:
    """Send ``sent`` on a fresh websocket; return ``closed CODE``, ``open`` or ``dropped ...``."""
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(10), session.ws_connect(url, heartbeat=None, max_msg_size=2**28) as ws:
                if read_first:
                    await ws.receive()
                for frame in sent:
                    if ws.closed:
                        break
                    await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
                try:
                    async with asyncio.timeout(CLOSE_WAIT_S):  # updates may keep coming: bound the whole drain
                        while True:
                            msg = await ws.receive()
                            if msg.type in {
                                aiohttp.WSMsgType.CLOSE,
                                aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING,
                            }:
                                return f"closed {ws.close_code}"
                            if msg.type is aiohttp.WSMsgType.ERROR:
                                return f"dropped {ws.exception()!r}"
                except TimeoutError:
                    return "open"
        except TimeoutError:
            return "hung"
        except (aiohttp.ClientError, ConnectionError) as exc:
            return f"dropped {exc!r}"


def check_ending(ending: str) -> None:
    """An offender is closed with a documented code, or left open if what it sent happened to be valid."""
    if ending == "open":
        return
    assert ending.startswith("closed "), ending
    assert int(ending.split()[1]) in DOCUMENTED_CLOSES, ending


class TestNetworkFuzz:
    """Garbage on every endpoint while a good agent and a good subscriber use the same collector."""

    async def test_fuzzed_frames_and_paths_leave_others_unaffected(self, procs: ProcessGroup) -> None:
        """Every offender closed with a documented code, no HTTP 5xx, the good agent and subscriber undisturbed."""
        collector = await asyncio.to_thread(procs.collector)
        base = collector.url
        ws_base = base.replace("http://", "ws://")
        agent = procs.agent(base, VICTIM, "--interval", "0.2")
        subscriber = procs.subscriber(f"{ws_base}/api/v1/subscribe")
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                body = await node(session, base, VICTIM)
                return body is not None and body["status"]["last_seq"] >= 3 and "subscribed" in subscriber.log_text()

            await wait_until(ready, 30, "the agent and the subscriber to be in")
        outcomes = Outcomes()
        await asyncio.to_thread(run_fuzz, base, outcomes)
        async with aiohttp.ClientSession() as session:
            refused = await protocol_errors(session, base, "ingest", "schema")
            status, body = await get_json(session, f"{base}/api/v1/health")
            assert status == 200, body
            victim: Any = await node(session, base, VICTIM)
        assert agent.terminate() == 0
        assert collector.proc.alive()
        assert refused > 0 or any(e.endswith(" closed 1008") for e in outcomes.endings), outcomes.endings
        assert agent_connections(agent.log_text()) == 1, "the good agent was disconnected"
        assert gaps(victim["history"]["seq"]) == []
        assert victim["status"]["state"] == "online"
        assert subscriber.alive()
        assert subscriber.log_text().split() == ["subscribed"], subscriber.log_text()


def run_fuzz(base: str, outcomes: Outcomes) -> None:
    """The three hypothesis runs, each example on a fresh connection (or request)."""
    ws_base = base.replace("http://", "ws://")

    @FUZZ_SETTINGS
    @given(frames(VALID_INGEST))
    def ingest(sent: list[bytes | str]) -> None:
        ending = asyncio.run(fuzz_connection(f"{ws_base}/api/v1/ingest", sent, read_first=False))
        outcomes.add(f"ingest {ending}")
        check_ending(ending)

    @FUZZ_SETTINGS
    @given(frames(VALID_SUBSCRIBE), st.booleans())
    def subscribe(sent: list[bytes | str], json_format: bool) -> None:
        query = "?format=json" if json_format else ""
        ending = asyncio.run(fuzz_connection(f"{ws_base}/api/v1/subscribe{query}", sent, read_first=True))
        outcomes.add(f"subscribe {ending}")
        check_ending(ending)

    path_chars = string.ascii_letters + string.digits + "/._-~%:@!$&'()*+,;=?"
    query_values = st.text(alphabet=string.printable, max_size=30)

    @FUZZ_SETTINGS
    @given(
        st.sampled_from(["/api/v1/", "/api/", "/", "/api/v1/nodes/", "/metrics"]),
        st.text(alphabet=path_chars, max_size=40),
        st.dictionaries(st.sampled_from(["state", "format", "x", ""]), query_values, max_size=3),
    )
    def http(prefix: str, tail: str, query: dict[str, str]) -> None:
        asyncio.run(http_request(base, prefix + tail, query, outcomes))

    ingest()
    subscribe()
    http()


async def http_request(base: str, path: str, query: dict[str, str], outcomes: Outcomes) -> None:
    """GET an odd path with an odd query: never a 5xx, and under /api/ always a JSON body."""
    url = yarl.URL(base).with_path(path.split("?", maxsplit=1)[0] or "/", encoded=False).with_query(query)
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as response:
        body = await response.read()
        outcomes.add(f"http {response.status}")
        assert response.status < 500, (url, response.status, body[:200])
        if url.path.startswith("/api/") and response.status != 101:
            assert response.content_type == "application/json", (url, response.status, body[:200])
