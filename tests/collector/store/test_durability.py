"""What an ack may cover: only committed samples, never past a refused one; degraded health with a reason."""

from __future__ import annotations

from collector.store.durability import AckAction, AckGate, accepting, health_reason
from collector.store.model import Durable

T0 = 1000.0


def fed(gate: AckGate, node: str, inst: str, seqs: range, *, accepted: bool = True) -> None:
    """Hand ``seqs`` of one node to the gate as the shell would after each store append."""
    for seq in seqs:
        if gate.should_store(node, inst):
            gate.appended(node, inst, seq, accepted)


class TestAckGate:
    """Acks follow commits, at the agent's ack_every pace."""

    def test_nothing_is_acked_before_its_commit(self) -> None:
        """Heartbeats 1-5 were queued but not committed: no ack; once 1-3 commit, ack 3."""
        gate = AckGate(interval_s=5.0)
        assert gate.hello("n", "i", None, 0, T0) == 0
        fed(gate, "n", "i", range(1, 6))
        assert gate.committed([], T0 + 1) == []
        assert gate.committed([Durable("n", "i", 3)], T0 + 1) == [AckAction("n", "i", 3)]

    def test_ack_every_paces_the_acks(self) -> None:
        """With ack_every=4 and one commit per sample, acks go out at 4 and 8, and after 5 s anyway."""
        gate = AckGate(interval_s=5.0)
        gate.hello("n", "i", 4, 0, T0)
        fed(gate, "n", "i", range(1, 10))
        acks = [gate.committed([Durable("n", "i", s)], T0 + s * 0.1) for s in range(1, 9)]
        assert [a[0].seq for a in acks if a] == [4, 8]
        assert gate.committed([Durable("n", "i", 9)], T0 + 6.0) == [AckAction("n", "i", 9)]

    def test_a_commit_of_an_old_instance_acks_nothing(self) -> None:
        """The agent restarted (new instance) before the old instance's samples committed: no ack for them."""
        gate = AckGate(interval_s=5.0)
        gate.hello("n", "old", None, 0, T0)
        fed(gate, "n", "old", range(1, 4))
        gate.hello("n", "new", None, 0, T0 + 1)
        assert gate.committed([Durable("n", "old", 3)], T0 + 2) == []

    def test_the_hello_is_acked_with_what_the_store_holds(self) -> None:
        """After a restart the registry says 120 durable: the hello ack is 120, and dedup starts there."""
        gate = AckGate(interval_s=5.0)
        assert gate.hello("n", "i", None, 120, T0) == 120
        assert gate.accepted_seq("n") == 120
        assert gate.durable_seq("n") == 120


class TestSlotReports:
    """The writer process reports commits as (slot, seq) pairs; each slot is one (node, instance)."""

    def test_a_slot_report_moves_the_durable_seq_of_its_node_only(self) -> None:
        """Slots 7 and 8 report seqs 5 and 2: each node's durable seq follows its own slot, never backwards."""
        gate = AckGate(interval_s=5.0)
        gate.hello("a", "i", None, 0, T0, slot=7)
        gate.hello("b", "i", None, 0, T0, slot=8)
        fed(gate, "a", "i", range(1, 6))
        gate.committed_slots([7, 5, 8, 2])
        gate.committed_slots([7, 3])
        assert (gate.durable_seq("a"), gate.durable_seq("b")) == (5, 2)

    def test_a_report_of_the_old_instance_slot_moves_nothing(self) -> None:
        """The agent restarted (new instance, new slot) before its old samples committed: their report is ignored."""
        gate = AckGate(interval_s=5.0)
        gate.hello("n", "old", None, 0, T0, slot=1)
        gate.hello("n", "new", None, 0, T0 + 1, slot=2)
        gate.committed_slots([1, 30])
        assert gate.durable_seq("n") == 0
        gate.gone("n")
        gate.committed_slots([2, 4])
        assert gate.durable_seq("n") == 0


class TestBackPressure:
    """A refused sample stops storing and acking that node until it reconnects and replays."""

    def test_a_refusal_caps_acks_below_the_hole(self) -> None:
        """Seq 4 was refused: later samples are not stored, and no ack ever covers 4."""
        gate = AckGate(interval_s=5.0)
        gate.hello("n", "i", None, 0, T0)
        fed(gate, "n", "i", range(1, 4))
        gate.appended("n", "i", 4, accepted=False)
        assert not gate.should_store("n", "i")
        assert gate.committed([Durable("n", "i", 3)], T0 + 1) == [AckAction("n", "i", 3)]
        assert gate.accepted_seq("n") == 3
        assert gate.refused == 2  # seq 4 refused by the queue, seq 5 not even offered

    def test_resync_once_the_store_accepts_again(self) -> None:
        """No resync while the queue is full; once it drains the holed node is named, and its hello clears it."""
        gate = AckGate(interval_s=5.0)
        gate.hello("n", "i", None, 0, T0)
        gate.hello("m", "j", None, 0, T0)
        fed(gate, "n", "i", range(1, 3))
        gate.appended("n", "i", 3, accepted=False)
        assert gate.resyncs(store_accepting=False) == []
        assert gate.resyncs(store_accepting=True) == ["n"]
        gate.committed([Durable("n", "i", 2)], T0 + 1)
        assert gate.hello("n", "i", None, 0, T0 + 2) == 2  # the agent replays from 3
        assert gate.should_store("n", "i")
        assert gate.resyncs(store_accepting=True) == []

    def test_health_names_the_reason(self) -> None:
        """A full queue or a failed write is degraded with a reason; a write failure wins."""
        assert health_reason(10, 100, None) is None
        assert health_reason(100, 100, None) == "store queue full (100 samples waiting for the disk)"
        assert health_reason(100, 100, "disk full: x") == "disk full: x"

    def test_resyncs_wait_until_the_queue_is_half_empty(self) -> None:
        """Hysteresis: a queue just below full does not start a replay storm that fills it again."""
        assert not accepting(99, 100, None)
        assert accepting(50, 100, None)
        assert not accepting(0, 100, "disk full")
