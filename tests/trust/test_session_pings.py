"""Finding 16b's rule, in memory: an ingest session refuses a websocket ping flood (the shell must see the pings)."""

from __future__ import annotations

from collector.cache import NodeCache
from collector.cache_port import CachePort
from collector.ingest_session import Close, IngestSession
from shared.codec import encode
from tests.support.messages import WALL_T0, hello


def session() -> IngestSession:
    """A session over a real cache, after an accepted hello."""
    s = IngestSession(CachePort(NodeCache(), 1, lambda: WALL_T0), now=0.0)
    s.start()
    s.receive_frame(encode(hello(newest_seq=0)), 0.0)
    return s


def test_pings_at_the_reference_agents_rate_are_fine() -> None:
    """One ping every 10 s (the reference agent) for an hour never costs the connection anything."""
    s = session()
    assert all(s.receive_ping(10.0 * n) == () for n in range(1, 361))


def test_a_ping_flood_is_closed_with_4430() -> None:
    """Ten pings in a row are allowed; the eleventh within the same second gets an error and 4430 rate_exceeded."""
    s = session()
    for _ in range(10):
        assert s.receive_ping(1.0) == ()
    actions = s.receive_ping(1.0)
    closes = [a for a in actions if isinstance(a, Close)]
    assert [(c.code, c.reason) for c in closes] == [(4430, "rate_exceeded")]
    assert s.receive_ping(1.0) == ()  # closed: nothing more happens
