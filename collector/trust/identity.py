"""Trust on first use for node ids: the first node key to claim a node id owns it, as in SSH's known_hosts.

An agent sends a per-node credential in its hello (derived from the node key
in its state dir, see ``agent.identity`` and docs/security.md). The collector
keeps only its SHA-256 fingerprint, per node id, in a ``KeyRecord``:

- a hello for a node id with no record records the fingerprint (first use);
- a hello with the recorded key is accepted, and may replace any older
  connection of that node, whatever its ``agent_instance_id`` (instance ids
  are printed in the API and the log: they prove nothing);
- a hello with another key is refused with 4403 ``node_key_mismatch``,
  whatever the node's state, counted, and logged at WARNING every time,
  paced by a ``LogGate`` so a retry loop cannot fill the log;
- a hello without a key, for a node that has one, is refused with 4403
  ``node_key_required``; without a key for an unknown node it is accepted
  unverified (the old rules apply) unless ``require_keys`` is set.

Operator actions, for the admin API: ``forget(node_id)`` drops the record (the
next key is trusted on first use again), ``rotate(node_id, wall)`` accepts
the next different key once, within ``rotation_window_s``, and
``pin(node_id, fingerprint, wall)`` binds a node id to the fingerprint the
agent printed (``nodewatch agent --print-fingerprint``), with no race: the way
to evict a squatter, or to register a fleet before it starts.

Pure: no I/O but the log lines; ``now`` is monotonic (log pacing), ``wall``
is epoch seconds (persisted timestamps). Not here: the node table itself
(``NodeCache``), storage (the store persists ``KeyRecord`` values returned in
``Accept.record`` and loads them back with ``load``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from collector.trust.ratelog import LogGate, warn_limited
from collector.trust.refusal import Refusal, TrustReason

# The credential is 32 bytes as 64 lowercase hex digits (agent.identity.node_credential).
CREDENTIAL_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# What ``fingerprint`` prints: SHA-256 in base64 without its one "=" of padding, as ssh-keygen -l.
FINGERPRINT_PATTERN = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
# Domain separation: a fingerprint can never equal a hash some other part of nodewatch computes.
_FINGERPRINT_DOMAIN = b"nodewatch node credential fingerprint v1\x00"
# How long ``rotate`` waits for the new key: a day covers a reinstall started after the admin call.
DEFAULT_ROTATION_WINDOW_S = 24 * 3600.0
# Twice the default --max-nodes: records outlive nodes (a forgotten node's key stays bound).
DEFAULT_MAX_RECORDS = 20_000


def fingerprint(credential: str) -> str:
    """``SHA256:<base64, no padding>`` of a credential, as ``ssh-keygen -l`` prints a key.

    Unsalted on purpose: the credential is 256 random bits, so neither brute force nor a
    precomputed table can find it from its hash (a salt protects low-entropy passwords), and an
    operator can compare the collector's log with the agent's own ``fingerprint`` output.
    """
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + credential.encode("ascii")).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One node id bound to one key fingerprint; what the store persists."""

    node_id: str
    fingerprint: str
    first_seen_at: float  # wall clock of the first use
    last_seen_at: float  # wall clock of the last accepted hello
    rotate_until_at: float | None = None  # set by ``rotate``: a different key is accepted once until then
    mismatches: int = 0  # hellos refused for this node id since the record was made


class AcceptKind(StrEnum):
    """Why a hello passed the identity check."""

    FIRST_USE = "first_use"  # no record: this key now owns the node id
    KNOWN = "known"  # the recorded key
    ROTATED = "rotated"  # a new key, accepted once after ``rotate``
    KEYLESS = "keyless"  # no key and no record, and keys are not required


@dataclass(frozen=True, slots=True)
class Accept:
    """Go on with the hello.

    ``verified``: a key proved the node id, so the hello may replace any older connection of the
    node (the cache must not answer 4409 for another instance). ``record``: persist this, or None.
    """

    kind: AcceptKind
    verified: bool
    record: KeyRecord | None


IdentityDecision = Accept | Refusal


class IdentityTable:
    """Every node id's key fingerprint, and the TOFU rules above; one per collector."""

    __slots__ = (
        "_gate",
        "_log",
        "_records",
        "max_records",
        "refusals",
        "require_keys",
        "revision",
        "rotation_window_s",
    )

    def __init__(
        self,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        require_keys: bool = False,
        rotation_window_s: float = DEFAULT_ROTATION_WINDOW_S,
        logger: logging.Logger | None = None,
        log_gate: LogGate | None = None,
    ) -> None:
        self.max_records = max_records
        self.require_keys = require_keys
        self.rotation_window_s = rotation_window_s
        self._records: dict[str, KeyRecord] = {}
        # Bumped by every change to a record: the store saves the table when it moved (debounced).
        self.revision = 0
        self._log = logger if logger is not None else logging.getLogger("nodewatch.collector.trust")
        self._gate = log_gate if log_gate is not None else LogGate()
        # Refused hellos by reason, for /metrics (nodewatch_identity_refusals_total{reason}).
        self.refusals: dict[TrustReason, int] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, node_id: str) -> KeyRecord | None:
        """The node id's record, or None (never claimed with a key, or forgotten)."""
        return self._records.get(node_id)

    def records(self) -> list[KeyRecord]:
        """Every record, sorted by node id (for the admin API and the store)."""
        return [r for _, r in sorted(self._records.items())]

    def load(self, records: Iterable[KeyRecord]) -> None:
        """Replace the table with ``records``, as the store read them back at start."""
        self._records = {r.node_id: r for r in records}
        self.revision += 1

    def check(self, node_id: str, credential: str | None, *, peer: str, now: float, wall: float) -> IdentityDecision:
        """The identity verdict on a hello for ``node_id`` carrying ``credential`` (None: no key sent)."""
        record = self._records.get(node_id)
        if credential is None:
            if record is None and not self.require_keys:
                return Accept(AcceptKind.KEYLESS, verified=False, record=None)
            return self._refuse_keyless(node_id, record, peer=peer, now=now)
        if CREDENTIAL_PATTERN.fullmatch(credential) is None:  # the Hello schema checks it; this is a backstop
            raise RuntimeError(f"expected a credential of 64 lowercase hex digits, got {len(credential)} characters")
        presented = fingerprint(credential)
        if record is None:
            return self._first_use(node_id, presented, peer=peer, wall=wall)
        if hmac.compare_digest(record.fingerprint, presented):
            updated = replace(record, last_seen_at=wall)
            self._put(updated)
            return Accept(AcceptKind.KNOWN, verified=True, record=updated)
        if record.rotate_until_at is not None and wall <= record.rotate_until_at:
            rotated = replace(record, fingerprint=presented, last_seen_at=wall, rotate_until_at=None, mismatches=0)
            self._put(rotated)
            self._log.warning(
                "node %r: key rotated by operator request, now %s (was %s), from %r",
                node_id,
                presented,
                record.fingerprint,
                peer,
            )
            return Accept(AcceptKind.ROTATED, verified=True, record=rotated)
        return self._refuse_mismatch(record, presented, peer=peer, now=now)

    def forget(self, node_id: str) -> bool:
        """Drop the node id's record, so the next key is trusted on first use; False if there was none."""
        if self._records.pop(node_id, None) is None:
            return False
        self.revision += 1
        return True

    def rotate(self, node_id: str, wall: float) -> KeyRecord | None:
        """Accept the next different key for ``node_id`` once, until ``wall + rotation_window_s``.

        The recorded key keeps working until then. None if the node id has no record (the
        admin API answers 404). The returned record is to be persisted.
        """
        record = self._records.get(node_id)
        if record is None:
            return None
        pending = replace(record, rotate_until_at=wall + self.rotation_window_s)
        self._put(pending)
        return pending

    def pin(self, node_id: str, fingerprint_text: str, wall: float) -> KeyRecord:
        """Bind ``node_id`` to ``fingerprint_text`` now, replacing any record; the record to persist.

        Unlike ``rotate`` there is no window in which someone else's key could win. A malformed
        fingerprint raises ValueError (the admin API answers 400 with the message).
        """
        if FINGERPRINT_PATTERN.fullmatch(fingerprint_text) is None:
            raise ValueError(f"fingerprint: expected 'SHA256:' and 43 base64 characters, got {fingerprint_text!r:.80}")
        old = self._records.get(node_id)
        if old is None:
            record = KeyRecord(node_id, fingerprint_text, first_seen_at=wall, last_seen_at=wall)
        else:
            record = replace(old, fingerprint=fingerprint_text, rotate_until_at=None, mismatches=0)
        self._put(record)
        was = None if old is None else old.fingerprint
        self._log.warning("node %r: key pinned by operator to %s (was %s)", node_id, fingerprint_text, was)
        return record

    def _put(self, record: KeyRecord) -> None:
        self._records[record.node_id] = record
        self.revision += 1

    def _first_use(self, node_id: str, presented: str, *, peer: str, wall: float) -> IdentityDecision:
        if len(self._records) >= self.max_records:
            detail = f"expected at most {self.max_records} node keys, this collector already holds {len(self._records)}"
            return self._count(Refusal(TrustReason.CAPACITY_REACHED, detail))
        record = KeyRecord(node_id=node_id, fingerprint=presented, first_seen_at=wall, last_seen_at=wall)
        self._put(record)
        self._log.info("node %r: first use of key %s, from %r", node_id, presented, peer)
        return Accept(AcceptKind.FIRST_USE, verified=True, record=record)

    def _refuse_mismatch(self, record: KeyRecord, presented: str, *, peer: str, now: float) -> Refusal:
        node_id = record.node_id
        self._put(replace(record, mismatches=record.mismatches + 1, rotate_until_at=None))
        warn_limited(
            self._log,
            self._gate,
            node_id,
            now,
            "node %r: refused a hello with key %s from %r; the node id is bound to key %s "
            "(nodewatch admin rotate-key or forget, if the machine was reinstalled)",
            node_id,
            presented,
            peer,
            record.fingerprint,
        )
        detail = f"expected the node key recorded for {node_id!r} ({record.fingerprint}), got {presented}"
        return self._count(Refusal(TrustReason.NODE_KEY_MISMATCH, detail))

    def _refuse_keyless(self, node_id: str, record: KeyRecord | None, *, peer: str, now: float) -> Refusal:
        if record is not None:
            self._put(replace(record, mismatches=record.mismatches + 1))
        why = "the node id is bound to a key" if record is not None else "this collector requires node keys"
        msg = "node %r: refused a hello without a node key from %r: %s"
        warn_limited(self._log, self._gate, node_id, now, msg, node_id, peer, why)
        detail = f"expected a node key in the hello for {node_id!r} ({why}), got none"
        return self._count(Refusal(TrustReason.NODE_KEY_REQUIRED, detail))

    def _count(self, refusal: Refusal) -> Refusal:
        self.refusals[refusal.reason] = self.refusals.get(refusal.reason, 0) + 1
        return refusal
