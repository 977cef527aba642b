"""A refused peer's reconnects made cheap: after repeated 4430 refusals, its ingest upgrades get HTTP 429 for a while.

Why: a flooder refused with 4430 reconnected ~200 times a second, and each
attempt cost the collector an upgrade, a hello and the 10 frames of a fresh
connection's burst; honest nodes' ack p99 went 2.2 → 59 ms (bench/faults.py,
"One flooding connection"). ``RefusalPenalty`` remembers, per (peer address,
agent-token label), a refusal score; past ``FREE_REFUSALS`` it arms a cooldown
that doubles with every further refusal, from ``BASE_COOLDOWN_S`` up to
``MAX_COOLDOWN_S``. Within the cooldown the ingest handler answers the upgrade
with HTTP 429 and ``Retry-After`` before any websocket, hello or frame.

Honest agents behind the same address (a NAT gateway) and token are not locked
out: only refusals arm or extend the cooldown, never a 429 nor an accepted
connection, and the score decays by one every ``DECAY_S``. The cooldown ends
for everyone at once, so a neighbour of a flooder waits at most
``MAX_COOLDOWN_S`` (and connected agents are never touched). The address is
the ``peer_key`` (IPv6 by /64), the label ``collector.trust.gate.token_label``.

``IngestPenalty`` is the same check on a raw request head, for the CLI's
admission layer: it reads the ``Authorization`` header itself, so a penalised
upgrade never reaches aiohttp. Pure: the caller passes the monotonic ``now``.
Not here: the HTTP answers (``collector.admission``: ``penalty_response`` and
the head reader's held-back 429) or the sockets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from collector.trust.gate import token_label
from collector.trust.nodetable import peer_key
from shared.errors import CloseCode

# The close codes that say "this peer spent a budget and will do it again at once": 4430, which comes only after
# an upgrade, an accepted hello and a burst of frames. Not 1008: refused at its first bad frame, before any hello
# is accepted, it costs far less, and a fuzzer or a client bug must keep getting its specific close code
# (tests/faults/test_fuzz.py). Not 4409/4503/4403: those are about the node table, not the peer.
PENALIZED_CODES = frozenset({int(CloseCode.RATE_EXCEEDED)})
# Refusals before any cooldown: an honest agent over a budget is refused once and backs off 10 s (shared.retry);
# a few in a row (a test, an operator's script) cost nothing. A flooder passes this in its first 30 ms.
FREE_REFUSALS = 4
# The first cooldown, doubled per further refusal: 1, 2, 4 ... 30 s. The cap is the reference agent's own backoff
# cap, so a NAT neighbour of a flooder reconnects no later than its backoff would have let it anyway.
BASE_COOLDOWN_S = 1.0
MAX_COOLDOWN_S = 30.0
# The score forgets one refusal a minute: slower than one refusal per MAX_COOLDOWN_S, so a flooder that gets in
# once per cooldown stays at the cap. An agent refused once a minute never reaches a cooldown; one refused every
# 10-15 s (the least retry delay after a 4430, shared.retry) does after about six, and then waits at most 30 s more.
DECAY_S = 60.0
# Keys remembered at once (~150 bytes each): one per refused address and token; past it, the calmest go first.
DEFAULT_MAX_KEYS = 20_000


@dataclass(slots=True)
class _Score:
    score: float
    at: float  # when ``score`` was last decayed
    until: float  # the cooldown's end (monotonic)


@dataclass(frozen=True, slots=True)
class Penalized:
    """Answer HTTP 429 with ``Retry-After: retry_after_s`` and ``detail``; no upgrade, no hello."""

    detail: str
    retry_after_s: float


class RefusalPenalty:
    """Per (address, token label) refusal scores and cooldowns; see the module docstring."""

    __slots__ = ("_keys", "max_keys")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise RuntimeError(f"expected max_keys >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._keys: dict[tuple[str, str], _Score] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def refused(self, address: str, label: str, code: int, now: float) -> bool:
        """A connection from ``address`` with ``label`` was closed with ``code``; True if a cooldown is armed."""
        if code not in PENALIZED_CODES:
            return False
        key = (peer_key(address), label)
        state = self._keys.pop(key, None)  # re-insert: the dict stays oldest-refusal first, for ``_prune``
        if state is None:
            if len(self._keys) >= self.max_keys:
                self._prune(now)
            state = _Score(0.0, now, -math.inf)
        _decay(state, now)
        state.score += 1
        self._keys[key] = state
        over = state.score - FREE_REFUSALS
        if over <= 0:
            return False
        cooldown = min(MAX_COOLDOWN_S, BASE_COOLDOWN_S * 2 ** (math.ceil(over) - 1))
        state.until = max(state.until, now + cooldown)
        return True

    def check(self, address: str, label: str, now: float) -> Penalized | None:
        """None to go on with the upgrade; a ``Penalized`` while (address, label) is in its cooldown."""
        key = (peer_key(address), label)
        state = self._keys.get(key)
        if state is None or now >= state.until:
            return None
        wait = state.until - now
        detail = (
            f"expected no ingest upgrade from {key[0]} with this credential for {wait:.1f} s after "
            f"{state.score:.0f} refusals (4430), got one"
        )
        return Penalized(detail, wait)

    def _prune(self, now: float) -> None:
        """Drop keys whose cooldown is over and whose score decayed below the free refusals; else the oldest one."""
        for key, state in list(self._keys.items()):
            _decay(state, now)
            if now >= state.until and state.score < 1:
                del self._keys[key]
        if len(self._keys) >= self.max_keys:
            del self._keys[next(iter(self._keys))]


def _decay(state: _Score, now: float) -> None:
    """Forget one refusal per ``DECAY_S`` since the score last changed."""
    elapsed = now - state.at
    if elapsed > 0:
        state.score = max(0.0, state.score - elapsed / DECAY_S)
        state.at = now


def header_value(head: bytes, name: bytes) -> str:
    """The first ``name`` header's value in a raw request head (``name`` lower-case), or "" if absent."""
    at = head.lower().find(b"\r\n" + name + b":")
    if at < 0:
        return ""
    start = at + len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip().decode("utf-8", "surrogateescape")


class PenaltyCounts(Protocol):
    """Where ``IngestPenalty`` counts its 429s: ``collector.metrics.CollectorStats``."""

    penalized_upgrades: int


class IngestPenalty:
    """The admission layer's side of the cooldown (``collector.admission``): no aiohttp parser, no handler.

    The ingest handler checks the same ``RefusalPenalty`` again (a kept-alive connection's later request and a
    collector without an ``AdmissionSite`` never pass here).
    """

    __slots__ = ("refusals", "stats", "tokens")

    def __init__(self, refusals: RefusalPenalty, tokens: list[bytes], stats: PenaltyCounts) -> None:
        self.refusals = refusals
        self.tokens = tokens
        self.stats = stats

    def check(self, address: str, head: bytes, now: float) -> Penalized | None:
        """A ``Penalized`` if this ingest request's address and agent token are in a cooldown, counted; else None."""
        label = token_label(header_value(head, b"authorization"), self.tokens)
        penalized = self.refusals.check(address, label, now)
        if penalized is not None:
            self.stats.penalized_upgrades += 1
        return penalized
