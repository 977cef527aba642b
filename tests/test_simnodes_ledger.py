"""nodewatch.simnodes.AckLedger: which seqs a simulated agent was promised, for bench/restart.py's gap split."""

from __future__ import annotations

from nodewatch.simnodes import AckLedger


class TestAckLedger:
    """Which seqs the simulated agent was promised (docs/protocol.md 4.1)."""

    def test_acks_cover_their_own_connection(self) -> None:
        """Acks on a connection promise the seqs it sent, up to the ack."""
        ledger = AckLedger()
        ledger.connected(1, 0)
        ledger.acked(0, 0)  # the hello's ack
        ledger.acked(5, 7)
        assert ledger.promised == [[1, 5]]

    def test_a_cut_connection_is_covered_only_by_the_next_hello(self) -> None:
        """Seqs in flight when a connection ended count only if the next hello's ack says they are held."""
        ledger = AckLedger()
        ledger.connected(1, 0)
        ledger.acked(0, 0)
        ledger.acked(4, 6)  # 5 and 6 sent, then the connection was cut
        ledger.connected(7, 6)
        ledger.acked(4, 6)  # the collector holds up to 4: 5 and 6 were lost in flight, never promised
        ledger.acked(9, 9)  # later acks pass over 5 and 6, as the protocol allows (the agent never resent them)
        assert ledger.promised == [[1, 4], [7, 9]]

    def test_a_refused_hello_leaves_its_range_to_the_next(self) -> None:
        """A connection whose hello got no ack (a 4409) leaves the seqs before it to the next hello's ack."""
        ledger = AckLedger()
        ledger.connected(1, 0)
        ledger.acked(0, 0)
        ledger.connected(4, 3)  # 1..3 sent, unacked
        ledger.connected(6, 5)  # 4..5 sent on a connection refused before its hello's ack
        ledger.acked(5, 5)
        assert ledger.promised == [[1, 5]]
