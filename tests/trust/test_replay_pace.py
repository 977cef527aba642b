"""Backlog replay is paced by the ingest shell (docs/security.md, 3.3): 1,000 frames/s past a burst of 1,000.

Against a real collector on loopback. Fails on the code before, where the session admitted the
replay and the shell read on at once: 3,000 backlog frames were taken in within a few hundred ms.
The bound checked is a lower one (pacing makes the replay take at least so long), never a speed.
"""

from __future__ import annotations

import asyncio
import time

from collector.trust.budget import ReplayPace
from shared.codec import encode
from shared.messages import Ack
from tests.support.collector import MakeClient, connect_agent, receive_message, send_heartbeat
from tests.support.messages import heartbeat, hello

BACKLOG = 3000
# 1,000 free frames, then 2,000 at 1,000/s: 2 s at least; 1.5 s leaves room for the clock's grain.
AT_LEAST_S = 1.5


class TestReplayPace:
    """A replaying agent is slowed by TCP, never refused, and live agents go on meanwhile."""

    async def test_a_declared_backlog_takes_the_paced_time_and_is_all_acked(self, make_client: MakeClient) -> None:
        """3,000 backlog frames sent at once are all acked, no sooner than 2,000 frames at 1,000/s allow."""
        client = await make_client()
        ws, ack = await connect_agent(client, hello(node_id="replayer", newest_seq=BACKLOG, ack_every=BACKLOG))
        assert ack.seq == 0
        frames = [encode(heartbeat(seq)) for seq in range(1, BACKLOG + 1)]
        started = time.monotonic()
        for frame in frames:
            await ws.send_bytes(frame)
        last = await receive_message(ws)
        while isinstance(last, Ack) and last.seq < BACKLOG:
            last = await receive_message(ws)
        took_s = time.monotonic() - started
        assert last == Ack(seq=BACKLOG)
        assert took_s >= AT_LEAST_S
        await ws.close()

    async def test_a_live_agent_is_acked_while_another_replays(self, make_client: MakeClient) -> None:
        """While one agent replays a backlog, another agent's live heartbeat is acked as usual."""
        client = await make_client()
        replayer, _ = await connect_agent(client, hello(node_id="replayer", newest_seq=BACKLOG, ack_every=BACKLOG))
        for seq in range(1, BACKLOG + 1):
            await replayer.send_bytes(encode(heartbeat(seq)))
        live, _ = await connect_agent(client, hello(node_id="live", instance="inst-live"))
        ack = await send_heartbeat(live, heartbeat(1))
        assert ack.seq == 1
        await asyncio.gather(live.close(), replayer.close())


class TestReplayPaceArithmetic:
    """The pacer's sleeps, on a fake clock."""

    def test_the_burst_is_free_then_sleeps_come_in_ten_ms_steps(self) -> None:
        """1,000 frames need no sleep; the next ten add 10 ms of debt, taken in one sleep."""
        pace = ReplayPace(2000, now=0.0)
        assert all(pace.frame(0.0) == 0.0 for _ in range(1000))
        delays = [pace.frame(0.0) for _ in range(10)]
        assert delays[:9] == [0.0] * 9
        assert abs(delays[9] - 0.010) < 1e-9

    def test_the_pacer_is_done_once_the_backlog_is_spent(self) -> None:
        """After the owed frames the pacer says done and asks for no more sleeps."""
        pace = ReplayPace(3, now=0.0)
        for _ in range(3):
            pace.frame(0.0)
        assert pace.done
        assert pace.frame(0.0) == 0.0
