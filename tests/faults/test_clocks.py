"""Clock faults: an agent whose wall clock is an hour off, and a collector whose own wall clock jumps.

Liveness must follow the collector's monotonic clock only; wall clocks only
feed ``clock_skew_s`` and the ``*_at`` stamps people read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from collector.app import create_app
from collector.config import CollectorConfig
from shared.codec import encode
from tests.support.messages import heartbeat, hello
from tests.support.processes import ProcessGroup, StateRecorder, node, wait_until

INTERVAL_S = 0.2
HOUR_S = 3600.0


@dataclass
class JumpingClock:
    """A wall clock that is the real one plus an offset the test moves."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


async def push(
    base: str, node_id: str, shift_s: float, stop: asyncio.Event, during: Callable[[int], None] | None = None
) -> None:
    """A simulated agent whose wall clock is ``shift_s`` off: hello, then one heartbeat per interval until ``stop``."""
    url = base.replace("http://", "ws://") + "/api/v1/ingest"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_bytes(
            encode(hello(node_id, f"{node_id}-inst", interval_s=INTERVAL_S, sent_at=time.time() + shift_s))
        )
        seq = 0
        while not stop.is_set():
            seq += 1
            await ws.send_bytes(encode(heartbeat(seq, sampled_at=time.time() + shift_s)))
            if during is not None:
                during(seq)
            await asyncio.sleep(INTERVAL_S)
        # Go silent without closing: from here on only the collector's clock decides.
        await asyncio.sleep(OFFLINE_WAIT_S)


OFFLINE_WAIT_S = 3.0


class TestAgentClockOff:
    """An agent an hour ahead or behind, next to one with a correct clock, on a real collector process."""

    @pytest.mark.parametrize("shift_s", [HOUR_S, -HOUR_S])
    async def test_skew_reported_liveness_unaffected(self, procs: ProcessGroup, shift_s: float) -> None:
        """Skew shows about +-3600 s, and both nodes go stale 3 intervals after their last heartbeat, together."""
        collector = await asyncio.to_thread(procs.collector)
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session, StateRecorder(collector.url) as recorder:
            tasks = [
                asyncio.create_task(push(collector.url, "skewed", shift_s, stop)),
                asyncio.create_task(push(collector.url, "true", 0.0, stop)),
            ]

            async def both_in() -> bool:
                a, b = await node(session, collector.url, "skewed"), await node(session, collector.url, "true")
                return a is not None and b is not None and min(a["status"]["last_seq"], b["status"]["last_seq"]) >= 5

            await wait_until(both_in, 15, "both simulated agents to push")
            skewed, true = await node(session, collector.url, "skewed"), await node(session, collector.url, "true")
            assert skewed is not None
            assert true is not None
            assert skewed["status"]["clock_skew_s"] == pytest.approx(shift_s, abs=1.0)
            assert abs(true["status"]["clock_skew_s"]) < 1.0
            assert skewed["status"]["state"] == "online"
            silent_at = time.monotonic()
            stop.set()

            async def both_stale() -> bool:
                return all(recorder.first(n, "stale", silent_at) is not None for n in ("skewed", "true"))

            await wait_until(both_stale, 5, "both nodes to go stale")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seen = {}
        for node_id in ("skewed", "true"):
            stale = recorder.first(node_id, "stale", silent_at)
            assert stale is not None
            assert stale.last_seen_at is not None
            assert stale.state_since_at - stale.last_seen_at == pytest.approx(3 * INTERVAL_S, abs=0.05)
            seen[node_id] = stale.seen_mono
            assert recorder.states(node_id) == ["online", "stale"]
        assert abs(seen["skewed"] - seen["true"]) < 0.5


class TestCollectorWallClockJumps:
    """The collector's wall clock jumps an hour forward, then two back, while an agent pushes."""

    async def test_wall_jumps_do_not_flap_liveness(self) -> None:
        """No transition while heartbeats flow despite the jumps; stale comes 3 monotonic intervals after they stop."""
        wall = JumpingClock()
        app = create_app(CollectorConfig(port=0), wall_clock=wall)  # the monotonic clock stays time.monotonic
        async with TestServer(app, host="127.0.0.1") as server:
            base = str(server.make_url("")).rstrip("/")
            stop = asyncio.Event()

            def jump(seq: int) -> None:
                if seq == 5:
                    wall.offset_s = HOUR_S
                elif seq == 10:
                    wall.offset_s = -HOUR_S
                elif seq == 15:
                    stop.set()

            async with aiohttp.ClientSession() as session, StateRecorder(base) as recorder:
                pusher = asyncio.create_task(push(base, "steady", 0.0, stop, during=jump))
                await asyncio.wait_for(stop.wait(), 15)
                silent_at = time.monotonic()
                body = await node(session, base, "steady")
                assert body is not None
                # The agent is right and the collector is an hour behind: the skew says so.
                assert body["status"]["clock_skew_s"] == pytest.approx(HOUR_S, abs=1.0)

                async def stale() -> bool:
                    return recorder.first("steady", "stale", silent_at) is not None

                stale_after_s = await wait_until(stale, 5, "the node to go stale")
                pusher.cancel()
                await asyncio.gather(pusher, return_exceptions=True)
        assert recorder.states("steady") == ["online", "stale"], "liveness flapped with the wall clock"
        assert 2 * INTERVAL_S <= stale_after_s <= 3 * INTERVAL_S + 1.0
