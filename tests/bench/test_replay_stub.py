"""bench/replay_stub.py: a recording replays as one continuous fleet that the real viewer link consumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench._replay_record import HISTORY_POINTS, FleetView
from bench.replay_stub import Recording, Shift, retime, split_updates, start_stub
from bench.viewer_stall import stop_all
from shared.codec import COLLECTOR_LIMITS, decode, encode, to_wire_dict
from shared.messages import NodeEntry, NodeHistory, NodeStatus, Snapshot, Update
from tests.support.messages import WALL_T0, heartbeat, history, snapshot
from viewer.batching import NodeBatch
from viewer.link import CollectorLink, LinkConfig

if TYPE_CHECKING:  # importing it at collection time runs before pytest-qt picks its Qt binding
    from pytestqt.qtbot import QtBot

INTERVAL_S = 0.1  # fast nodes, so a whole loop of the recording passes in half a second
LOOP_S = 0.5  # five samples per node per loop


def moving_entry(node_id: str, seq: int) -> NodeEntry:
    """``node_id`` online with sample ``seq``, sampled and seen ``INTERVAL_S`` per seq after ``WALL_T0``."""
    at = WALL_T0 + INTERVAL_S * (seq - 1)
    status = NodeStatus(
        node_id=node_id,
        state="online",
        state_since_at=WALL_T0 - 60,
        last_seen_at=at,
        interval_s=INTERVAL_S,
        agent_instance_id=f"{node_id}-instance",
        connected=True,
        last_seq=seq,
    )
    return NodeEntry(status=status, last_sample=heartbeat(seq, sampled_at=at))


def small_recording() -> Recording:
    """Nodes a and b: a snapshot at seq 1, then one update per sample (seqs 2-6) within one 0.5 s loop."""
    first = Snapshot(server_time_at=WALL_T0, nodes=[moving_entry("a", 1), moving_entry("b", 1)])
    first = first.model_copy(update={"nodes": [n.model_copy(update={"history": history(1)}) for n in first.nodes]})
    updates = [
        (INTERVAL_S * (seq - 2), encode(Update(server_time_at=WALL_T0, nodes=[moving_entry(n, seq) for n in "ab"])))
        for seq in range(2, 7)
    ]
    return Recording(encode(first), updates, LOOP_S, {"nodes": 2, "source": "tests"})


@pytest.fixture
def recording_file(tmp_path: Path) -> Path:
    """The small recording, saved."""
    path = tmp_path / "small.nwrec"
    small_recording().write(path)
    return path


class TestRetime:
    """Each loop moves every instant and every seq, so replayed nodes never go back in time."""

    def test_update_moves_instants_and_seqs(self) -> None:
        """Two loops of 60 s at 1 Hz later, a sample is 120 s newer and 120 seqs further on."""
        frame = encode(Update(server_time_at=WALL_T0, nodes=snapshot("a").nodes))
        moved = decode(retime(frame, Shift(seconds=120.0, loops=2, loop_s=60.0)), COLLECTOR_LIMITS)
        assert isinstance(moved, Update)
        entry = moved.nodes[0]
        assert moved.server_time_at == WALL_T0 + 120.0
        assert entry.status.last_seen_at == WALL_T0 + 120.0
        assert entry.status.state_since_at == WALL_T0 - 60 + 120.0
        assert entry.status.last_seq == 1 + 120
        assert entry.last_sample is not None
        assert (entry.last_sample.seq, entry.last_sample.sampled_at) == (121, WALL_T0 + 120.0)
        assert entry.history is not None
        assert entry.history.seq == [121, 122, 123, 124, 125]
        assert entry.history.sampled_at[-1] == WALL_T0 + 120.0

    def test_first_loop_moves_time_only(self) -> None:
        """The snapshot is moved to now but keeps its seqs: loop 0 is the recording itself."""
        moved = decode(retime(encode(snapshot("a")), Shift(seconds=5.0, loops=0, loop_s=60.0)), COLLECTOR_LIMITS)
        assert isinstance(moved, Snapshot)
        assert moved.nodes[0].status.last_seq == 1
        assert moved.server_time_at == WALL_T0 + 5.0


class TestFleetView:
    """The recorder's snapshot is the fleet as a viewer following the updates would hold it."""

    def test_updates_become_a_snapshot_with_recent_history(self) -> None:
        """After 70 samples of node a, the snapshot has a's facts, latest status and its last 60 samples."""
        view = FleetView()
        with_facts = snapshot("a").nodes[0].model_copy(update={"history": None})
        view.apply(to_wire_dict(Update(server_time_at=WALL_T0, nodes=[with_facts])))
        for seq in range(2, 72):
            view.apply(to_wire_dict(Update(server_time_at=WALL_T0 + seq, nodes=[moving_entry("a", seq)])))
        built = decode(view.snapshot(), COLLECTOR_LIMITS)
        assert isinstance(built, Snapshot)
        (entry,) = built.nodes
        assert entry.facts is not None
        assert entry.status.last_seq == 71
        assert entry.history is not None
        assert entry.history.seq == list(range(72 - HISTORY_POINTS, 72))
        assert entry.history.load_1[-1] == 0.5  # load_avg[0] of the sample
        assert built.server_time_at == WALL_T0 + 71

    def test_removed_node_leaves(self) -> None:
        """A node the collector forgot is not in the snapshot."""
        view = FleetView()
        view.apply(to_wire_dict(Update(server_time_at=WALL_T0, nodes=[moving_entry("a", 1), moving_entry("b", 1)])))
        view.apply(to_wire_dict(Update(server_time_at=WALL_T0, removed=["a"])))
        built = decode(view.snapshot(), COLLECTOR_LIMITS)
        assert isinstance(built, Snapshot)
        assert [e.status.node_id for e in built.nodes] == ["b"]


class TestRecording:
    """The file keeps the frames byte for byte."""

    def test_round_trip(self, recording_file: Path) -> None:
        """What is written is read back: snapshot, update offsets and frames, loop length, header."""
        original = small_recording()
        again = Recording.read(recording_file)
        assert again.snapshot == original.snapshot
        assert again.updates == original.updates
        assert again.loop_s == LOOP_S
        assert again.header["nodes"] == 2

    def test_split_keeps_every_entry_at_its_instant(self) -> None:
        """Cut into frames of one node, the updates carry the same entries at the same offsets, in order."""
        original = small_recording()
        split = split_updates(original, max_entries=1)
        assert len(split.updates) == 2 * len(original.updates)
        assert [offset for offset, _ in split.updates] == [o for o, _ in original.updates for _ in "ab"]
        nodes = [decode(frame, COLLECTOR_LIMITS) for _, frame in split.updates]
        assert all(isinstance(m, Update) and len(m.nodes) == 1 for m in nodes)

    def test_other_file_is_refused(self, tmp_path: Path) -> None:
        """A file that is not a recording is named in a ValueError, not replayed as garbage."""
        path = tmp_path / "other.bin"
        path.write_bytes(b"hello")
        with pytest.raises(ValueError, match="expected a replay recording"):
            Recording.read(path)


@pytest.fixture
def stub_url(recording_file: Path) -> Iterator[str]:
    """``bench/replay_stub.py serve`` running as a process on the small recording."""
    process, url, header = start_stub(recording_file, timeout_s=30.0)
    assert header["nodes"] == 2
    yield url
    stop_all([process])


class TestServe:
    """A real viewer link reads the stub as it would read a collector."""

    def test_viewer_link_sees_a_continuous_looping_fleet(self, qtbot: QtBot, stub_url: str) -> None:
        """The link gets the snapshot, then node a's samples count on past the recording's end, in time order."""
        link = CollectorLink(LinkConfig(collector_url=stub_url))
        batches: list[NodeBatch] = []
        link.batch_ready.connect(batches.append)
        link.start()
        try:

            def seqs() -> list[int]:
                return [b.entries["a"].status.last_seq for b in batches if "a" in b.entries]

            qtbot.waitUntil(lambda: bool(seqs()) and seqs()[-1] > 3 * 5, timeout=15_000)  # three loops
        finally:
            link.stop()
        assert batches[0].is_snapshot
        assert sorted(batches[0].entries) == ["a", "b"]
        assert seqs() == sorted(set(seqs())), "seqs went back or repeated at a loop boundary"
        seen_at = [b.entries["a"].status.last_seen_at or 0.0 for b in batches if "a" in b.entries]
        assert seen_at == sorted(seen_at)
        for batch in batches:
            sample = batch.entries["a"].last_sample if "a" in batch.entries else None
            if sample is not None:  # the sample and the status move together
                assert sample.seq == batch.entries["a"].status.last_seq
                assert sample.sampled_at == batch.entries["a"].status.last_seen_at

    def test_history_request_is_answered(self, qtbot: QtBot, stub_url: str) -> None:
        """Selecting a node asks for its history; the stub answers with the node's snapshot history."""
        link = CollectorLink(LinkConfig(collector_url=stub_url))
        answers: list[NodeHistory] = []
        link.history_ready.connect(answers.append)
        with qtbot.waitSignal(link.batch_ready, timeout=10_000):
            link.start()
        try:
            link.request_history("a")
            qtbot.waitUntil(lambda: bool(answers), timeout=10_000)
        finally:
            link.stop()
        assert answers[0].node_id == "a"
        assert len(answers[0].history.seq) == 1
