"""Who may hold a slot: the per-address cap on connections not yet authenticated, and the node table's eviction order.

- ``PeerGate`` caps, per peer address, the connections that have not yet
  finished authenticating (for ingest: up to an accepted hello; for
  subscribe: up to the upgrade), plus all of them together, as nginx's
  ``limit_conn`` does per ``$binary_remote_addr``. 10,000 idle sockets from one
  address then hold 32 slots, not the collector's whole admission limit; the
  rest are answered HTTP 429 with ``Retry-After`` before any upgrade. IPv6
  peers are counted per /64, the block one host or one LAN gets (RFC 6177), so
  an address-hopping host is still one peer; IPv4-mapped IPv6 counts as IPv4.
  An address that passed a hello in the last 10 minutes (``vouch``) may hold
  512: honest reconnect storms from one address (a NAT gateway's fleet, agents
  and viewers on one host) arrive faster than their heads, so a burst of 100
  accepts is 100 pending slots for a moment. A slot is held only until the
  connection's request head is complete (``collector.admission``).
- ``choose_victim`` picks which node to evict when the node table is full and
  a new node says hello: never one that is connected, nor one that sent data
  and is online or stale; first nodes that never sent a heartbeat (a
  hello-and-close junk id, whatever its state) and offline nodes holding
  fewer than 60 samples (a flooder's id: a hello, 10 frames, then 4430), oldest first;
  then nodes offline for at least ``min_offline_s``, longest offline first.
  None means "refuse the new node" (4503 ``capacity_reached``).

Pure, over plain values; not here: sockets, the HTTP answer, or forgetting
the evicted node (the shell calls ``NodeCache`` and ``IdentityTable.forget``).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

# Not-yet-authenticated connections per peer address. An honest agent holds one, for the hello's
# round trip; 32 lets a NAT gateway's fleet reconnect together (the rest retry after Retry-After).
DEFAULT_MAX_PER_PEER = 32
# An address that passed a hello within VOUCH_TTL_S gets this many instead: a NAT gateway's fleet or
# co-located viewers reconnecting together after a collector restart, all at once. Still far below
# DEFAULT_MAX_PENDING, so one vouched address cannot hold every pending slot.
DEFAULT_MAX_PER_VOUCHED_PEER = 512
# How long an accepted hello vouches for its address: longer than any reconnect storm's backoff (30 s cap).
VOUCH_TTL_S = 600.0
# Vouched addresses remembered at once (~100 bytes each): one per NAT gateway or host of a large fleet.
MAX_VOUCHED = 20_000
# ... and from everyone together: ~8 KiB of aiohttp state each, 4,096 is ~32 MiB at worst, and well
# under the admission limit so that authenticated agents always find room (finding 4).
DEFAULT_MAX_PENDING = 4096
# The Retry-After of a 429: long enough for the hellos in flight to finish.
PEER_RETRY_AFTER_S = 5.0
# A node offline this long may be evicted for a new one; shorter outages keep their slot.
DEFAULT_MIN_OFFLINE_S = 600.0
# An offline node that holds fewer samples than this is junk-tier (evicted first, at once): a new
# connection's first burst is 10 frames, and a real node runs for a minute before it holds 60.
FEW_SAMPLES = 60
_IPV6_PREFIX = 64


def peer_key(address: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64, anything unparsable as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, _IPV6_PREFIX), strict=False))
    return str(ip)


@dataclass(slots=True, eq=False)
class PeerSlot:
    """One not-yet-authenticated connection's slot; ``PeerGate.release`` it once, or twice harmlessly."""

    key: str
    released: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class PeerRefused:
    """Answer HTTP 429 with ``Retry-After: retry_after_s`` and ``detail`` in the JSON body, then close."""

    detail: str
    retry_after_s: float = PEER_RETRY_AFTER_S


class PeerGate:
    """Counts not-yet-authenticated connections per peer and in total; ``open`` is a slot or a refusal."""

    __slots__ = ("_counts", "_pending", "_vouched", "max_pending", "max_per_peer", "max_per_vouched", "refused")

    def __init__(
        self,
        max_per_peer: int = DEFAULT_MAX_PER_PEER,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_per_vouched: int | None = None,
    ) -> None:
        """``max_per_vouched`` defaults to ``DEFAULT_MAX_PER_VOUCHED_PEER`` (within the other two bounds)."""
        if max_per_vouched is None:
            max_per_vouched = max(max_per_peer, min(DEFAULT_MAX_PER_VOUCHED_PEER, max_pending))
        if not 1 <= max_per_peer <= max_per_vouched <= max_pending:
            raise RuntimeError(
                f"expected 1 <= max_per_peer <= max_per_vouched <= max_pending, got "
                f"{max_per_peer!r}, {max_per_vouched!r}, {max_pending!r}"
            )
        self.max_per_peer = max_per_peer
        self.max_pending = max_pending
        self.max_per_vouched = max_per_vouched
        self._vouched: dict[str, float] = {}  # peer key -> when a hello from it was last accepted
        self._counts: dict[str, int] = {}
        self._pending = 0
        self.refused = 0  # for /metrics: nodewatch_unauthenticated_refused_total

    def vouch(self, address: str, now: float) -> None:
        """A hello from ``address`` was accepted at ``now``: for ``VOUCH_TTL_S`` it gets the vouched cap."""
        key = peer_key(address)
        vouched = self._vouched
        vouched.pop(key, None)  # re-insert: the dict stays in vouching order, oldest first
        if len(vouched) >= MAX_VOUCHED:
            del vouched[next(iter(vouched))]
        vouched[key] = now

    def cap(self, address: str, now: float) -> int:
        """How many unauthenticated connections ``address`` may hold at ``now``."""
        at = self._vouched.get(peer_key(address))
        return self.max_per_vouched if at is not None and now - at < VOUCH_TTL_S else self.max_per_peer

    def open(self, address: str, now: float = -math.inf) -> PeerSlot | PeerRefused:
        """A new connection from ``address`` at ``now`` (before any byte is parsed); no ``now``: no vouching."""
        key = peer_key(address)
        count = self._counts.get(key, 0)
        if count >= self.max_per_peer and count >= (cap := self.cap(key, now)):
            self.refused += 1
            return PeerRefused(f"expected at most {cap} unauthenticated connections from {key}, got more")
        if self._pending >= self.max_pending:
            self.refused += 1
            return PeerRefused(f"expected at most {self.max_pending} unauthenticated connections in all, got more")
        self._counts[key] = count + 1
        self._pending += 1
        return PeerSlot(key)

    def release(self, slot: PeerSlot) -> None:
        """The connection authenticated (its hello was accepted) or closed; a second release does nothing."""
        if slot.released:
            return
        slot.released = True
        self._pending -= 1
        left = self._counts[slot.key] - 1
        if left:
            self._counts[slot.key] = left
        else:
            del self._counts[slot.key]

    def pending(self, address: str | None = None) -> int:
        """Open unauthenticated connections, from ``address``'s peer key or in all."""
        return self._pending if address is None else self._counts.get(peer_key(address), 0)


@dataclass(frozen=True, slots=True)
class EvictionCandidate:
    """What eviction needs to know of one node, read off its record."""

    node_id: str
    connected: bool
    state: str  # "online", "stale" or "offline"
    heartbeated: bool  # ever sent a heartbeat (last_seq > 0 or a sample held)
    last_heard: float  # monotonic: the last hello or heartbeat
    offline_since: float | None  # monotonic, None unless offline
    # Samples the node holds (its history's length); None: unknown, judged by ``heartbeated`` alone.
    samples: int | None = None


def _sort_key(node: EvictionCandidate, now: float, min_offline_s: float) -> tuple[int, float] | None:
    """(tier, time) for an evictable node, lower first; None if it must stay."""
    if node.connected or (node.state != "offline" and node.heartbeated):
        return None
    if not node.heartbeated:
        return (0, node.last_heard)
    if node.state == "offline" and node.samples is not None and node.samples < FEW_SAMPLES:
        # A flooder's junk id: a hello and the first burst of frames, then 4430. It carried almost no
        # data, so it goes before a real node's outage, and the table cannot be held full for 10 minutes.
        return (0, node.last_heard)
    since = node.last_heard if node.offline_since is None else node.offline_since
    if now - since < min_offline_s:
        return None
    return (1, since)


def choose_victim(
    candidates: Iterable[EvictionCandidate], now: float, min_offline_s: float = DEFAULT_MIN_OFFLINE_S
) -> str | None:
    """The node to evict for a new one, or None to refuse the new node; O(n), run only when the table is full.

    A never-heartbeated node that is still in a live state (a hello, then silence) is evictable once
    its connection is gone: it never carried data. Ties go to the smaller node id, for determinism.
    """
    best: tuple[int, float, str] | None = None
    for node in candidates:
        key = _sort_key(node, now, min_offline_s)
        if key is not None and (best is None or (*key, node.node_id) < best):
            best = (*key, node.node_id)
    return None if best is None else best[2]
