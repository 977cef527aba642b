"""The per-address cap on unauthenticated connections, and which node a full table evicts for a new one."""

from __future__ import annotations

import pytest

from collector.trust.nodetable import (
    EvictionCandidate,
    PeerGate,
    PeerRefused,
    PeerSlot,
    choose_victim,
    peer_key,
)


class TestPeerKey:
    @pytest.mark.parametrize(
        ("address", "key"),
        [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
            ("fe80::1%eth0", "fe80::/64"),
            ("not an address", "not an address"),
        ],
    )
    def test_addresses_are_counted_per_host(self, address: str, key: str) -> None:
        """An IPv6 host hopping within its /64, or speaking IPv4-mapped, is still one peer."""
        assert peer_key(address) == key


class TestPeerGate:
    def test_idle_sockets_from_one_address_cannot_lock_agents_out(self) -> None:
        """Finding 4: 10,300 idle sockets from one address hold 32 slots; an agent elsewhere still gets one."""
        gate = PeerGate(max_per_peer=32, max_pending=4096)
        results = [gate.open("198.51.100.66") for _ in range(10_300)]
        assert sum(isinstance(r, PeerSlot) for r in results) == 32
        refused = results[-1]
        assert isinstance(refused, PeerRefused)
        assert "198.51.100.66" in refused.detail
        assert refused.retry_after_s > 0
        assert isinstance(gate.open("192.0.2.7"), PeerSlot)
        assert gate.refused == 10_300 - 32

    def test_a_slot_is_freed_by_authenticating_or_closing(self) -> None:
        """Once its hello is accepted a connection no longer counts; releasing twice changes nothing."""
        gate = PeerGate(max_per_peer=2, max_pending=10)
        slot, other = gate.open("192.0.2.7"), gate.open("192.0.2.7")
        assert isinstance(slot, PeerSlot)
        assert isinstance(other, PeerSlot)
        assert isinstance(gate.open("192.0.2.7"), PeerRefused)
        gate.release(other)
        assert gate.pending("192.0.2.7") == 1
        gate.release(slot)
        gate.release(slot)
        assert gate.pending() == 0
        assert gate.pending("192.0.2.7") == 0
        assert isinstance(gate.open("192.0.2.7"), PeerSlot)

    def test_many_addresses_are_capped_in_total(self) -> None:
        """An attacker with many addresses still cannot hold more than ``max_pending`` slots."""
        gate = PeerGate(max_per_peer=2, max_pending=5)
        results = [gate.open(f"2001:db8:{i:x}::1") for i in range(10)]
        assert sum(isinstance(r, PeerSlot) for r in results) == 5
        last = results[-1]
        assert isinstance(last, PeerRefused)
        assert "in all" in last.detail

    def test_bad_settings_are_a_bug(self) -> None:
        """A per-peer cap above the total cap is misuse of our own API."""
        with pytest.raises(RuntimeError):
            PeerGate(max_per_peer=10, max_pending=5)


def _node(
    node_id: str,
    *,
    connected: bool = False,
    state: str = "offline",
    heartbeated: bool = True,
    last_heard: float = 0.0,
    offline_since: float | None = 0.0,
) -> EvictionCandidate:
    return EvictionCandidate(node_id, connected, state, heartbeated, last_heard, offline_since)


class TestChooseVictim:
    def test_junk_ids_go_before_real_nodes(self) -> None:
        """A hello-and-close id that never sent data is evicted before a real node offline for a day."""
        nodes = [
            _node("real", offline_since=0.0),
            _node("junk-2", heartbeated=False, last_heard=50.0),
            _node("junk-1", heartbeated=False, last_heard=40.0, state="online", offline_since=None),
        ]
        assert choose_victim(nodes, now=86_400.0) == "junk-1"

    def test_the_longest_offline_goes_first(self) -> None:
        """Among real nodes, the one offline longest is evicted."""
        nodes = [_node("a", offline_since=500.0), _node("b", offline_since=100.0), _node("c", offline_since=900.0)]
        assert choose_victim(nodes, now=10_000.0) == "b"

    @pytest.mark.parametrize(
        "node",
        [
            _node("connected", connected=True, heartbeated=False),
            _node("online", state="online", offline_since=None),
            _node("stale", state="stale", offline_since=None),
            _node("brief-outage", offline_since=9_900.0),
        ],
    )
    def test_live_and_recent_nodes_are_never_evicted(self, node: EvictionCandidate) -> None:
        """A connected, online, stale or just-offline node keeps its slot: the new node is refused instead."""
        assert choose_victim([node], now=10_000.0, min_offline_s=600.0) is None

    def test_ties_break_by_node_id(self) -> None:
        """Two nodes offline since the same instant: the smaller id goes, every time."""
        assert choose_victim([_node("b"), _node("a")], now=10_000.0) == "a"

    def test_offline_since_unknown_falls_back_to_last_heard(self) -> None:
        """A record offline without an offline time is judged by when it was last heard."""
        assert choose_victim([_node("x", offline_since=None, last_heard=0.0)], now=10_000.0) == "x"

    def test_an_offline_node_with_few_samples_goes_at_once(self) -> None:
        """A flooder's id (a hello, a burst of frames, then 4430) is junk: evicted at once, before a real outage."""
        flooder = EvictionCandidate("flood-1", False, "offline", True, 9_990.0, 9_995.0, samples=10)
        real = EvictionCandidate("real", False, "offline", True, 0.0, 1_000.0, samples=900)
        recent_real = EvictionCandidate("recent", False, "offline", True, 9_990.0, 9_995.0, samples=900)
        assert choose_victim([real, flooder], now=10_000.0) == "flood-1"
        assert choose_victim([recent_real], now=10_000.0) is None
        assert choose_victim([flooder], now=10_000.0) == "flood-1"
