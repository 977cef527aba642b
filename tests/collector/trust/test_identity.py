"""Trust on first use: a node id belongs to the first node key that claims it, until an operator says otherwise."""

from __future__ import annotations

import logging

import pytest

from agent.identity import fingerprint as agent_fingerprint
from agent.identity import node_credential
from collector.trust.identity import Accept, AcceptKind, IdentityDecision, IdentityTable, KeyRecord, fingerprint
from collector.trust.ratelog import LogGate
from collector.trust.refusal import Refusal, TrustReason
from tests.support.clock import FakeClock

KEY_A = node_credential(bytes(32), "web-01", "collector.example")
KEY_B = node_credential(bytes([1]) * 32, "web-01", "collector.example")
WALL_T0 = 1_795_000_000.0
PEER = "192.0.2.7"


def _table(
    *,
    max_records: int = 20_000,
    require_keys: bool = False,
    rotation_window_s: float = 86_400.0,
    log_gate: LogGate | None = None,
) -> IdentityTable:
    """A table that logs to a logger of its own, so caplog sees only its lines."""
    return IdentityTable(
        max_records=max_records,
        require_keys=require_keys,
        rotation_window_s=rotation_window_s,
        logger=logging.getLogger("test.trust.identity"),
        log_gate=log_gate,
    )


def _accepted(decision: IdentityDecision) -> Accept:
    assert isinstance(decision, Accept), f"expected the hello accepted, got {decision!r}"
    return decision


class TestFirstUse:
    def test_the_first_key_owns_the_node_id(self) -> None:
        """An unknown node id is recorded with the fingerprint of the key that claimed it, never the key itself."""
        table = _table()
        decision = _accepted(table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0))
        assert decision.kind is AcceptKind.FIRST_USE
        assert decision.verified
        assert decision.record == KeyRecord("web-01", fingerprint(KEY_A), WALL_T0, WALL_T0)
        assert KEY_A not in repr(table.records())

    def test_the_same_key_is_accepted_again_and_may_take_its_node_over(self) -> None:
        """A restart of the same machine (new instance id, same key) is verified, so it replaces its old socket."""
        table = _table()
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        decision = _accepted(table.check("web-01", KEY_A, peer=PEER, now=5.0, wall=WALL_T0 + 5))
        assert decision.kind is AcceptKind.KNOWN
        assert decision.verified
        assert decision.record is not None
        assert decision.record.last_seen_at == WALL_T0 + 5

    def test_collector_and_agent_print_the_same_fingerprint(self) -> None:
        """An operator can compare the collector's log line with the agent's own fingerprint output."""
        assert fingerprint(KEY_A) == agent_fingerprint(KEY_A)

    def test_a_full_table_refuses_new_node_ids_only(self) -> None:
        """Past ``max_records`` a new node id gets 4503, and known ones still connect."""
        table = _table(max_records=1)
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        refused = table.check("web-02", KEY_B, peer=PEER, now=0.0, wall=WALL_T0)
        assert isinstance(refused, Refusal)
        assert refused.reason is TrustReason.CAPACITY_REACHED
        assert refused.code == 4503
        assert _accepted(table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)).kind is AcceptKind.KNOWN

    def test_a_malformed_credential_is_a_bug_of_the_caller(self) -> None:
        """The Hello schema checks the credential's shape; passing anything else here is misuse."""
        with pytest.raises(RuntimeError, match="64 lowercase hex"):
            _table().check("web-01", "NOT-HEX", peer=PEER, now=0.0, wall=WALL_T0)


class TestMismatch:
    def test_another_key_is_refused_whatever_its_instance_id(self) -> None:
        """An insider with the fleet token but not the node's key gets 4403, counted, and the record holds."""
        table = _table()
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        refused = table.check("web-01", KEY_B, peer="198.51.100.9", now=1.0, wall=WALL_T0 + 1)
        assert isinstance(refused, Refusal)
        assert refused.reason is TrustReason.NODE_KEY_MISMATCH
        assert refused.code == 4403
        assert refused.retry_after_s is None
        assert fingerprint(KEY_A) in refused.detail
        assert fingerprint(KEY_B) in refused.detail
        record = table.get("web-01")
        assert record is not None
        assert record.fingerprint == fingerprint(KEY_A)
        assert record.mismatches == 1
        assert table.refusals == {TrustReason.NODE_KEY_MISMATCH: 1}

    def test_every_mismatch_is_a_warning_paced_per_node(self, caplog: pytest.LogCaptureFixture) -> None:
        """A squatter retrying every 100 ms for a minute writes 6 WARNING lines, the later ones counting the rest."""
        clock = FakeClock()
        table = _table(log_gate=LogGate(interval_s=10.0))
        table.check("web-01", KEY_A, peer=PEER, now=clock(), wall=WALL_T0)
        with caplog.at_level(logging.DEBUG, logger="test.trust.identity"):
            for _ in range(600):
                clock.advance(0.1)
                table.check("web-01", KEY_B, peer="198.51.100.9", now=clock(), wall=WALL_T0)
        lines = [r for r in caplog.records if "refused a hello" in r.getMessage()]
        assert {r.levelno for r in lines} == {logging.WARNING}
        assert len(lines) == 6
        assert "'198.51.100.9'" in lines[0].getMessage()
        assert "similar lines suppressed" in lines[1].getMessage()
        assert table.refusals[TrustReason.NODE_KEY_MISMATCH] == 600

    def test_a_keyless_hello_for_a_keyed_node_is_refused(self) -> None:
        """Dropping the key from the hello does not fall back to the old instance-id rules."""
        table = _table()
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        refused = table.check("web-01", None, peer=PEER, now=0.0, wall=WALL_T0)
        assert isinstance(refused, Refusal)
        assert refused.reason is TrustReason.NODE_KEY_REQUIRED
        assert refused.code == 4403

    def test_keyless_agents_still_work_until_keys_are_required(self) -> None:
        """An old agent without a key is accepted unverified for an unknown node; ``require_keys`` refuses it."""
        decision = _accepted(_table().check("old-01", None, peer=PEER, now=0.0, wall=WALL_T0))
        assert decision.kind is AcceptKind.KEYLESS
        assert not decision.verified
        assert decision.record is None
        refused = _table(require_keys=True).check("old-01", None, peer=PEER, now=0.0, wall=WALL_T0)
        assert isinstance(refused, Refusal)
        assert refused.reason is TrustReason.NODE_KEY_REQUIRED


class TestOperatorActions:
    def test_forget_makes_the_next_key_a_first_use(self) -> None:
        """After ``nodewatch admin forget``, a reinstalled machine with a new key owns the node id again."""
        table = _table()
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        assert table.forget("web-01")
        assert not table.forget("web-01")
        assert _accepted(table.check("web-01", KEY_B, peer=PEER, now=0.0, wall=WALL_T0)).kind is AcceptKind.FIRST_USE

    def test_rotate_accepts_the_next_new_key_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """After ``rotate-key`` the old key still works, the first new key replaces it, and a third key is refused."""
        table = _table()
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        pending = table.rotate("web-01", WALL_T0 + 10)
        assert pending is not None
        assert pending.rotate_until_at == WALL_T0 + 10 + table.rotation_window_s
        assert _accepted(table.check("web-01", KEY_A, peer=PEER, now=1.0, wall=WALL_T0 + 20)).kind is AcceptKind.KNOWN
        with caplog.at_level(logging.WARNING, logger="test.trust.identity"):
            rotated = _accepted(table.check("web-01", KEY_B, peer=PEER, now=2.0, wall=WALL_T0 + 30))
        assert rotated.kind is AcceptKind.ROTATED
        assert rotated.record is not None
        assert rotated.record.fingerprint == fingerprint(KEY_B)
        assert rotated.record.rotate_until_at is None
        assert "key rotated" in caplog.text
        key_c = node_credential(bytes([2]) * 32, "web-01", "collector.example")
        assert isinstance(table.check("web-01", key_c, peer=PEER, now=3.0, wall=WALL_T0 + 40), Refusal)
        assert isinstance(table.check("web-01", KEY_A, peer=PEER, now=4.0, wall=WALL_T0 + 50), Refusal)

    def test_a_rotation_lapses_after_its_window(self) -> None:
        """A rotation nobody used is not an open door forever: after the window a new key is refused."""
        table = _table(rotation_window_s=3600.0)
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        table.rotate("web-01", WALL_T0)
        assert isinstance(table.check("web-01", KEY_B, peer=PEER, now=0.0, wall=WALL_T0 + 3601), Refusal)
        record = table.get("web-01")
        assert record is not None
        assert record.rotate_until_at is None

    def test_pin_evicts_a_squatter_with_no_race(self) -> None:
        """Finding 2: the operator pins the real agent's printed fingerprint; the squatter is refused at once."""
        table = _table()
        table.check("web-01", KEY_B, peer="198.51.100.9", now=0.0, wall=WALL_T0)  # the squatter came first
        record = table.pin("web-01", fingerprint(KEY_A), WALL_T0 + 60)
        assert record.fingerprint == fingerprint(KEY_A)
        assert record.first_seen_at == WALL_T0
        assert isinstance(table.check("web-01", KEY_B, peer="198.51.100.9", now=1.0, wall=WALL_T0 + 61), Refusal)
        assert _accepted(table.check("web-01", KEY_A, peer=PEER, now=2.0, wall=WALL_T0 + 62)).kind is AcceptKind.KNOWN

    def test_pin_registers_a_node_before_it_starts(self) -> None:
        """With keys required, pinning every node first makes the fleet closed: unknown ids are refused."""
        table = _table(require_keys=True)
        table.pin("web-01", fingerprint(KEY_A), WALL_T0)
        assert _accepted(table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)).kind is AcceptKind.KNOWN

    @pytest.mark.parametrize("text", ["", "SHA256:", "sha256:" + "A" * 43, "SHA256:" + "!" * 43, "SHA256:" + "A" * 44])
    def test_pin_refuses_a_malformed_fingerprint(self, text: str) -> None:
        """A typo in the fingerprint is a 400 with what was expected, and changes nothing."""
        table = _table()
        with pytest.raises(ValueError, match="expected 'SHA256:' and 43 base64 characters"):
            table.pin("web-01", text, WALL_T0)
        assert table.get("web-01") is None

    def test_rotate_an_unknown_node_is_none(self) -> None:
        """The admin API answers 404 for a node id with no key on record."""
        assert _table().rotate("ghost", WALL_T0) is None

    def test_records_round_trip_through_the_store(self) -> None:
        """What the store saved and loads back at start binds the same node ids to the same keys."""
        table = _table()
        table.check("web-02", KEY_B, peer=PEER, now=0.0, wall=WALL_T0)
        table.check("web-01", KEY_A, peer=PEER, now=0.0, wall=WALL_T0)
        restarted = _table()
        restarted.load(table.records())
        assert [r.node_id for r in restarted.records()] == ["web-01", "web-02"]
        assert len(restarted) == 2
        assert isinstance(restarted.check("web-01", KEY_B, peer=PEER, now=0.0, wall=WALL_T0), Refusal)
