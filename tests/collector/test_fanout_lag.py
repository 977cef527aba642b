"""A viewer that reads, but slower than the fleet: it gets fewer, coalesced updates and is never cut.

Real collector on loopback (``aiohttp_client``), real websocket agents and a real subscriber
that sleeps between reads; aiohttp's client stops reading its socket while its queue is full,
so the collector sees a viewer that takes only part of the stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.changes import Change, ChangeKind
from collector.fanout import Fanout, FanoutLimits, Outbox, PendingUpdates
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Heartbeat, Snapshot, Update
from tests.support.clock import FakeClock
from tests.support.collector import connect_agent, fast_config, small_cache
from tests.support.messages import heartbeat, hello

NODES = 200
ROUNDS = 30
# Scaled down from 16 MiB and 2 MiB by the same 1/4 as this fleet's frames are to 10,000 nodes' (~850 KB a flush).
MAX_UNSENT_BYTES = 4 * 1024 * 1024
LAG_BYTES = 128 * 1024
# The viewer decodes this many entries a second, as the real one does 10,000 a second: here the fleet
# beats ~1,500-2,000 times a second on two busy cores, so it reads a sixth to a third of the stream.
ENTRIES_PER_S = 250.0


def roomy_heartbeat(seq: int) -> Heartbeat:
    """A legal heartbeat of ~2 KiB (16 named mounts): a few hundred of them fill a socket fast."""
    names = [f"/{'m' * 100}{i:02d}" for i in range(16)]
    return heartbeat(seq, disks={name: [100, 50] for name in names}, disks_read_only=names)


def last_seq(index: int) -> int:
    """Node ``index``'s final seq: nodes stop at different rounds, so a change lost while lagging would show."""
    return ROUNDS + 1 - index % 7


async def beat(agents: list[aiohttp.ClientWebSocketResponse], newest: dict[str, int], clock: FakeClock) -> None:
    """Each agent beats up to ``last_seq``, a round every 50 ms (the hello's interval), reading every ack.

    The collector judges liveness and rates by ``clock``, which moves 50 ms a round: on a loaded machine a
    round may take longer in real time, and the nodes must not go offline for it.
    """
    for seq in range(2, ROUNDS + 2):
        frame = encode_heartbeat(seq)
        beating = [(index, ws) for index, ws in enumerate(agents) if seq <= last_seq(index)]
        for _, ws in beating:
            await ws.send_bytes(frame)
        for index, ws in beating:
            msg = await ws.receive(timeout=10)
            assert msg.type is WSMsgType.BINARY, (msg.type, msg.extra)
            newest[f"node-{index:03d}"] = seq
        clock.advance(0.05)
        await asyncio.sleep(0.05)


def encode_heartbeat(seq: int) -> bytes:
    """``roomy_heartbeat(seq)`` packed (every agent sends the same bytes)."""
    return encode(roomy_heartbeat(seq))


class TestSlowViewer:
    """A viewer slower than the update stream falls back to coalesced updates instead of 4429."""

    async def test_a_slow_reader_is_never_cut_and_ends_with_every_nodes_latest_seq(self, aiohttp_client: Any) -> None:
        """A viewer taking a third of 200 fast nodes' stream is not cut, never sees a node go back, ends current."""
        limits = FanoutLimits(max_unsent_bytes=MAX_UNSENT_BYTES, lag_bytes=LAG_BYTES)
        config = fast_config(send_timeout_s=30.0)  # the byte bound, not a send timeout, is what today's code cut on
        clock = FakeClock()  # registering 200 agents one by one may take longer than their 0.5 s offline limit
        client: TestClient[Any, Any] = await aiohttp_client(create_app(config, clock=clock, fanout_limits=limits))
        async with aiohttp.ClientSession(client.make_url(""), connector=aiohttp.TCPConnector(limit=0)) as fleet:
            await self._watch_slowly(client, fleet, clock)  # the fleet's own session: more than aiohttp's 100 sockets

    @staticmethod
    async def _watch_slowly(client: TestClient[Any, Any], fleet: aiohttp.ClientSession, clock: FakeClock) -> None:
        agents = []
        for index in range(NODES):
            ws, _ = await connect_agent(fleet, hello(f"node-{index:03d}", f"inst-{index}", interval_s=0.05))
            await ws.send_bytes(encode_heartbeat(1))
            await ws.receive(timeout=10)
            agents.append(ws)
        newest = {f"node-{index:03d}": 1 for index in range(NODES)}
        viewer = await client.ws_connect("/api/v1/subscribe", max_msg_size=0)
        beating = asyncio.create_task(beat(agents, newest, clock))
        seen: dict[str, int] = {}
        entries = 0
        unsent_max = 0
        async with asyncio.timeout(60):
            while not beating.done() or seen != newest:
                try:  # once the fleet is done, a missing change shows as a quiet socket, then the diff below
                    msg = await viewer.receive(timeout=2.0 if beating.done() else None)
                except TimeoutError:
                    break
                assert msg.type is WSMsgType.BINARY, (msg.type, msg.data, msg.extra)  # a CLOSE here is the 4429
                message = decode(msg.data, COLLECTOR_LIMITS)
                assert isinstance(message, Snapshot | Update)
                entries += len(message.nodes)
                for entry in message.nodes:
                    node_id = entry.status.node_id
                    assert entry.status.last_seq is not None
                    assert entry.status.last_seq >= seen.get(node_id, 0), (node_id, entry.status.last_seq, seen)
                    seen[node_id] = entry.status.last_seq
                if not beating.done():
                    fanout = (await (await client.get("/api/v1/health")).json())["fanout"]
                    unsent_max = max(unsent_max, fanout["unsent_bytes_max"])
                    await asyncio.sleep(len(message.nodes) / ENTRIES_PER_S)
        await beating
        assert seen == {f"node-{index:03d}": last_seq(index) for index in range(NODES)}
        fanout = (await (await client.get("/api/v1/health")).json())["fanout"]
        assert fanout["cut_unsent_bytes"] == 0
        assert fanout["lagged"] >= 1  # it did fall behind, and was sent the latest state instead
        assert fanout["coalesced_updates"] >= 1
        assert entries < NODES * ROUNDS  # fewer entries than heartbeats: it got the latest state, not every one
        assert unsent_max <= MAX_UNSENT_BYTES  # the collector held a bounded amount for it all along
        metrics = await (await client.get("/metrics")).text()
        assert 'reason="subscriber_too_slow"' not in metrics
        await viewer.close()


@dataclass(eq=False)
class FakeViewer:
    """What the fan-out needs of a subscriber, with a socket whose unsent bytes the test sets."""

    in_socket: int = 0
    json_format: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(10_000, lambda: self.in_socket, lag_at=1_000)
        self.outbox.wrote(bytes(self.in_socket))  # what its socket holds was written to it


class TestLagging:
    """The fan-out's side: a lagging subscriber's changes merge, it is sent their latest state, then rejoins."""

    def test_a_lagging_viewer_gets_the_latest_state_of_what_it_missed_then_rejoins(self) -> None:
        """Past lag_at it gets no frames; once drained it gets one update of the changed nodes, then frames again."""
        cache = small_cache("node-a", "node-b", "node-c")
        fanout = Fanout(cache, FanoutLimits(), history_points=60)
        slow, fast = FakeViewer(in_socket=5_000), FakeViewer()
        for node_id in ("node-a", "node-b"):
            fanout.changed([Change(node_id, ChangeKind.STATUS)], subscribed=True)
            assert fanout.flush([slow, fast], 1_700_000_010.0) == []
        fanout.changed([Change("node-a", ChangeKind.STATUS | ChangeKind.FACTS)], subscribed=True)
        fanout.flush([slow, fast], 1_700_000_011.0)
        assert (len(slow.outbox), len(fast.outbox)) == (0, 3)
        assert fanout.stats.lagged == 1
        slow.in_socket = 0  # it read what its socket held
        frames = list(fanout.lag_parts(slow, 1_700_000_012.0))
        assert slow.outbox.behind is None  # one part held it all: back on the shared frames
        assert fanout.stats.rejoined == fanout.stats.coalesced_updates == 1
        update = decode(frames[0], COLLECTOR_LIMITS) if isinstance(frames[0], bytes) else None
        assert isinstance(update, Update)
        entries = {entry.status.node_id: entry for entry in update.nodes}
        assert sorted(entries) == ["node-a", "node-b"]
        assert entries["node-a"].facts is not None  # a facts change anywhere in the lag still brings facts
        assert entries["node-b"].facts is None
        assert entries["node-a"].history is None  # an ordinary update, not a snapshot part
        fanout.changed([Change("node-c", ChangeKind.STATUS)], subscribed=True)
        fanout.flush([slow, fast], 1_700_000_013.0)
        assert len(slow.outbox) == 1

    def test_a_viewer_that_reads_nothing_is_cut_and_one_that_reads_is_not(self) -> None:
        """Lagging, it is cut once max_unsent_bytes of frames passed with no byte leaving its socket, not before."""
        outbox = FakeViewer(in_socket=5_000).outbox
        assert outbox.lags()
        assert all(outbox.skip(2_000) for _ in range(5))  # 10,000 bytes passed: at the bound
        assert not outbox.skip(1)
        reading = FakeViewer(in_socket=5_000)
        for _ in range(20):
            assert reading.outbox.lags()
            assert reading.outbox.skip(2_000)
            reading.in_socket -= 100  # a little left its socket since the last flush

    def test_changes_merged_while_lagging_keep_their_order(self) -> None:
        """A node forgotten then back while lagging comes with facts; one back then forgotten is removed."""
        lag, later = PendingUpdates(), PendingUpdates()
        lag.add([Change("node-a", ChangeKind.REMOVED), Change("node-b", ChangeKind.SAMPLE)])
        later.add([Change("node-a", ChangeKind.STATUS), Change("node-b", ChangeKind.REMOVED)])
        lag.merge(later)
        cache = small_cache("node-a")
        update = lag.take_update(cache, 1_700_000_000.0)
        assert update is not None
        assert [entry.status.node_id for entry in update.nodes] == ["node-a"]
        assert update.nodes[0].facts is not None
        assert update.removed == ["node-b"]
