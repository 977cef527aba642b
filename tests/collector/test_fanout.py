"""Issue 13, findings 12a and 6/12b: one encoding per update for every viewer, and a snapshot in bounded parts.

Real collectors on loopback (``aiohttp_client``), real websocket agents and subscribers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.changes import Change, ChangeKind
from collector.fanout import FanoutLimits
from collector.snapshot import SNAPSHOT_PART_MAX_BYTES, EntryParts, PartLimits, SnapshotCache, SnapshotSend, split
from shared.codec import COLLECTOR_LIMITS, decode, decode_json
from shared.messages import Heartbeat, Message, Snapshot, Update
from tests.support.collector import MakeClient, connect_agent, fast_config, send_heartbeat, small_cache
from tests.support.messages import heartbeat, hello

FAT_NAME = "m" * 200  # long mount names: a heartbeat of ~50 KiB, legal (finding 6's maximal heartbeats)


def fat_heartbeat(seq: int) -> Heartbeat:
    """A legal heartbeat near the 64 KiB frame limit: 1,024 cores and 64 long-named mounts."""
    names = [f"/{FAT_NAME}{i:02d}" for i in range(64)]
    return heartbeat(
        seq,
        cpu_per_core_percent=[12.5] * 1024,
        disks={name: [100, 50] for name in names},
        disk_inodes={name: [1000, 10] for name in names},
        disks_read_only=names,
    )


async def fat_fleet(client: TestClient[Any, Any], nodes: int) -> list[aiohttp.ClientWebSocketResponse]:
    """``nodes`` agents, each acked for one fat heartbeat; their sockets stay open."""
    sockets = []
    for index in range(nodes):
        ws, _ = await connect_agent(client, hello(f"fat-{index:03d}", f"inst-{index}"))
        await send_heartbeat(ws, fat_heartbeat(1))
        sockets.append(ws)
    return sockets


async def frames_until_live(viewer: aiohttp.ClientWebSocketResponse, json_format: bool) -> list[tuple[int, Message]]:
    """Every frame up to the first update without ``history`` (a live one): (size, message)."""
    frames: list[tuple[int, Message]] = []
    async with asyncio.timeout(20):
        while True:
            msg = await viewer.receive()
            assert msg.type is (WSMsgType.TEXT if json_format else WSMsgType.BINARY), (msg.type, msg.extra)
            data = msg.data
            message = decode_json(data, COLLECTOR_LIMITS) if json_format else decode(data, COLLECTOR_LIMITS)
            frames.append((len(data), message))
            if isinstance(message, Update) and all(entry.history is None for entry in message.nodes):
                return frames


class TestSharedEncoding:
    """Finding 12a: a flush is packed once per format, whatever the number of subscribers."""

    async def test_every_subscriber_gets_the_same_bytes_packed_once(self, make_client: MakeClient) -> None:
        """Ten msgpack and three JSON viewers get identical updates, and health shows one encoding per format."""
        client = await make_client()
        viewers = [await client.ws_connect("/api/v1/subscribe") for _ in range(10)]
        texts = [await client.ws_connect("/api/v1/subscribe?format=json") for _ in range(3)]
        for viewer in [*viewers, *texts]:
            await viewer.receive(timeout=5)  # the snapshot
        ws, _ = await connect_agent(client, hello("node-a"))
        for seq in range(1, 6):
            await send_heartbeat(ws, heartbeat(seq, cpu=10.0 + seq))
            await asyncio.sleep(0.05)  # a flush apart (FAST: 20 ms)
        await asyncio.sleep(0.2)
        health = await (await client.get("/api/v1/health")).json()
        fanout = health["fanout"]
        assert fanout["flushes"] >= 2
        assert fanout["frames_packed"] == 2 * fanout["flushes"]  # one msgpack, one JSON text per flush
        assert fanout["frames_queued"] == 13 * fanout["flushes"]
        binary = [await self._updates(viewer, fanout["flushes"]) for viewer in viewers]
        assert all(frames == binary[0] for frames in binary)
        as_text = [await self._updates(viewer, fanout["flushes"]) for viewer in texts]
        assert all(frames == as_text[0] for frames in as_text)
        decoded = [decode(frame, COLLECTOR_LIMITS) for frame in binary[0] if isinstance(frame, bytes)]
        assert [decode_json(text, COLLECTOR_LIMITS) for text in as_text[0]] == decoded
        last = decoded[-1]
        assert isinstance(last, Update)
        assert last.nodes[0].last_sample is not None
        assert last.nodes[0].last_sample.cpu_percent == 15.0

    @staticmethod
    async def _updates(viewer: aiohttp.ClientWebSocketResponse, count: int) -> list[bytes | str]:
        frames: list[bytes | str] = []
        for _ in range(count):
            msg = await viewer.receive(timeout=5)
            frames.append(msg.data)
        return frames


class TestChunkedSnapshot:
    """Finding 6 and 12b: the snapshot comes in bounded parts and is packed from per-node cached parts."""

    @pytest.mark.parametrize("json_format", [False, True], ids=["msgpack", "json"])
    async def test_a_fleet_bigger_than_the_viewers_frame_limit_still_reaches_it(
        self, make_client: MakeClient, json_format: bool
    ) -> None:
        """40 maximal nodes (~2 MiB) reach a viewer that takes frames of 1 MiB at most: every node, in parts."""
        client = await make_client()
        await fat_fleet(client, 40)
        query = "?format=json" if json_format else ""
        viewer = await client.ws_connect("/api/v1/subscribe" + query, max_msg_size=2**20)
        # A live update after the parts, so the test knows the snapshot has ended.
        late, _ = await connect_agent(client, hello("late-node", "inst-late"))
        await send_heartbeat(late, heartbeat(1))
        frames = await frames_until_live(viewer, json_format)
        first, parts = frames[0][1], [message for _, message in frames[1:-1]]
        assert isinstance(first, Snapshot)
        assert len(parts) >= 3  # ~2 MiB of nodes in parts of 256 KiB
        assert all(isinstance(part, Update) and not part.removed for part in parts)
        entries = [*first.nodes, *(entry for part in parts if isinstance(part, Update) for entry in part.nodes)]
        assert sorted(entry.status.node_id for entry in entries) == [f"fat-{i:03d}" for i in range(40)]
        for entry in entries:
            assert entry.facts is not None
            assert entry.history is not None
            assert entry.history.seq == [1]
            assert entry.last_sample is not None
            assert entry.last_sample.cpu_per_core_percent == [12.5] * 1024
        if not json_format:  # the bound is in msgpack bytes; JSON text of the same part is longer
            assert max(size for size, _ in frames[:-1]) <= SNAPSHOT_PART_MAX_BYTES
        live = frames[-1][1]
        assert isinstance(live, Update)
        assert "late-node" in {entry.status.node_id for entry in live.nodes}

    async def test_a_small_fleet_is_still_one_snapshot_frame(self, make_client: MakeClient) -> None:
        """A fleet that fits one part gets exactly the version-1 single snapshot."""
        client = await make_client()
        for name in ("node-a", "node-b"):
            ws, _ = await connect_agent(client, hello(name, f"inst-{name}"))
            await send_heartbeat(ws, heartbeat(1))
        viewer = await client.ws_connect("/api/v1/subscribe")
        snapshot = decode((await viewer.receive(timeout=5)).data, COLLECTOR_LIMITS)
        assert isinstance(snapshot, Snapshot)
        assert sorted(entry.status.node_id for entry in snapshot.nodes) == ["node-a", "node-b"]
        with pytest.raises(TimeoutError):
            await viewer.receive(timeout=0.2)  # nothing changed: no part follows

    async def test_connect_close_loops_pack_only_the_nodes_that_changed(self, aiohttp_client: Any) -> None:
        """Twenty viewers connecting and leaving re-pack no node that did not change between them."""
        app = create_app(fast_config())
        client: TestClient[Any, Any] = await aiohttp_client(app)
        sockets = await fat_fleet(client, 5)
        first = await self._snapshot_bytes(client)
        for _ in range(20):
            assert await self._snapshot_bytes(client) == first  # same nodes, same state: same parts
        assert await self._packed(client) == 5
        await send_heartbeat(sockets[2], fat_heartbeat(2))
        await asyncio.sleep(0.05)
        changed = decode(await self._snapshot_bytes(client), COLLECTOR_LIMITS)
        assert await self._packed(client) == 6  # only fat-002 again
        assert isinstance(changed, Snapshot)
        seqs = {entry.status.node_id: entry.history.seq for entry in changed.nodes if entry.history is not None}
        assert seqs["fat-002"] == [1, 2]
        assert seqs["fat-001"] == [1]

    @staticmethod
    async def _packed(client: TestClient[Any, Any]) -> int:
        health = await (await client.get("/api/v1/health")).json()
        return int(health["fanout"]["snapshot_entries_packed"])

    @staticmethod
    async def _snapshot_bytes(client: TestClient[Any, Any]) -> bytes:
        """The nodes of one fresh subscriber's snapshot (without its server_time_at), packed."""
        viewer = await client.ws_connect("/api/v1/subscribe", max_msg_size=0)
        frame = (await viewer.receive(timeout=5)).data
        await viewer.close()
        nodes: bytes = msgpack.packb(
            {"type": "snapshot", "server_time_at": 0.0, "nodes": msgpack.unpackb(frame)["nodes"]}
        )
        return nodes


class TestPartsWhileTheFleetMoves:
    """Parts packed as they go out, then the catch-up: a moving fleet never goes backwards in a viewer."""

    async def test_no_node_goes_back_while_parts_and_updates_interleave(self, aiohttp_client: Any) -> None:
        """Ten nodes beating while a viewer gets one node per part: each node's seq only rises, ending at its newest."""
        limits = FanoutLimits(snapshot_parts=PartLimits(max_bytes=2_000, max_nodes=1))
        client: TestClient[Any, Any] = await aiohttp_client(create_app(fast_config(), fanout_limits=limits))
        agents = []
        for index in range(10):
            ws, _ = await connect_agent(client, hello(f"node-{index}", f"inst-{index}", interval_s=0.05))
            await send_heartbeat(ws, heartbeat(1))
            agents.append(ws)
        newest = dict.fromkeys(range(10), 1)

        async def beat() -> None:
            for seq in range(2, 12):
                for index, ws in enumerate(agents):
                    await send_heartbeat(ws, heartbeat(seq))
                    newest[index] = seq

        beating = asyncio.create_task(beat())
        viewer = await client.ws_connect("/api/v1/subscribe")
        seen: dict[str, int] = {}
        kinds = []
        async with asyncio.timeout(10):
            while len(seen) < 10 or any(seen[f"node-{i}"] < newest[i] for i in range(10)) or not beating.done():
                message = decode((await viewer.receive()).data, COLLECTOR_LIMITS)
                assert isinstance(message, Snapshot | Update)
                kinds.append(type(message).__name__)
                for entry in message.nodes:
                    if entry.last_sample is not None:
                        node_id = entry.status.node_id
                        assert entry.last_sample.seq >= seen.get(node_id, 0), (node_id, entry.last_sample.seq, seen)
                        seen[node_id] = entry.last_sample.seq
        assert kinds[0] == "Snapshot"
        assert seen == {f"node-{i}": 11 for i in range(10)}


class TestSnapshotCache:
    """The per-node parts: packed once per change, and a viewer's snapshot caught up at registration."""

    def test_parts_are_packed_again_only_for_nodes_that_changed(self) -> None:
        """Asking twice reuses a node's parts; a change of the node makes the next ask pack them anew."""
        cache = small_cache("node-a", "node-b")
        a, b = cache.get("node-a"), cache.get("node-b")
        assert a is not None
        assert b is not None
        snapshots = SnapshotCache(history_points=60)
        first_a, first_b = snapshots.parts(a), snapshots.parts(b)
        assert snapshots.parts(a) is first_a
        snapshots.forget([Change("node-b", ChangeKind.STATUS)])
        assert snapshots.serial("node-b") is None
        again_b = snapshots.parts(b)
        assert snapshots.parts(a) is first_a
        assert again_b[0] > first_b[0]
        assert again_b[1] == first_b[1]  # nothing really changed: the same bytes, packed again
        assert snapshots.packed == 3

    def test_catch_up_brings_what_changed_appeared_or_went_during_the_parts(self) -> None:
        """A node that changed after its part, a new one and a forgotten one all come in the catch-up."""
        cache = small_cache("node-a", "node-b", "node-c")
        snapshots = SnapshotCache(history_points=60)
        send = SnapshotSend(snapshots, cache, PartLimits(max_bytes=10_000, max_nodes=1), json_format=False)
        parts = [decode(frame, COLLECTOR_LIMITS) for frame in send.parts(1_700_000_001.0) if isinstance(frame, bytes)]
        assert [type(part).__name__ for part in parts] == ["Snapshot", "Update", "Update"]
        assert send.catch_up(1_700_000_002.0) == []  # nothing changed
        snapshots.forget([Change("node-a", ChangeKind.STATUS)])
        cache.hello(hello("node-d", "inst-d"), conn=9, now=2.0, wall=1_700_000_002.0)
        cache.close("node-c", 3, clean=True, now=2.0, wall=1_700_000_002.0)
        assert cache.forget("node-c")  # an operator's DELETE
        frames = [
            decode(frame, COLLECTOR_LIMITS) for frame in send.catch_up(1_700_000_003.0) if isinstance(frame, bytes)
        ]
        assert all(isinstance(frame, Update) for frame in frames)
        updates = [frame for frame in frames if isinstance(frame, Update)]
        assert sorted(entry.status.node_id for u in updates for entry in u.nodes) == ["node-a", "node-d"]
        assert all(entry.history is not None for u in updates for entry in u.nodes)
        assert updates[-1].removed == ["node-c"]

    def test_split_bounds_parts_and_keeps_an_oversized_node_alone(self) -> None:
        """Runs stay under the byte and node bounds; a node bigger than the bound is a run of its own."""
        small = EntryParts(b"s" * 10, b"f" * 10, b"x" * 80, b"h" * 10)
        big = EntryParts(b"s" * 10, b"f" * 10, b"x" * 5000, b"h" * 10)
        runs = list(split([small, small, big, small, small, small], PartLimits(max_bytes=500, max_nodes=2)))
        assert [len(run) for run in runs] == [2, 1, 2, 1]
        assert runs[1] == [big]
        assert list(split([], PartLimits(max_bytes=500, max_nodes=2))) == [[]]
