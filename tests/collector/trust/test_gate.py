"""The hello gate: which token matched, and the order of the hello budget, the key check and the new-node budget."""

from __future__ import annotations

import pytest

from agent.identity import node_credential
from collector.trust.budget import hello_budget, new_node_budget
from collector.trust.gate import NO_TOKEN_LABEL, HelloGate, token_label
from collector.trust.identity import Accept, AcceptKind
from collector.trust.refusal import Refusal, TrustReason

WALL_T0 = 1_795_000_000.0
KEY_A = node_credential(bytes(32), "web-01", "collector.example")
KEY_B = node_credential(bytes([1]) * 32, "web-01", "collector.example")
TOKENS = [b"alpha", b"beta"]


class TestTokenLabel:
    @pytest.mark.parametrize(
        ("header", "tokens", "label"),
        [
            ("Bearer alpha", TOKENS, "token-0"),
            ("Bearer beta", TOKENS, "token-1"),
            ("Bearer  beta ", TOKENS, "token-1"),
            ("Bearer gamma", TOKENS, NO_TOKEN_LABEL),
            ("", TOKENS, NO_TOKEN_LABEL),
            ("Bearer \udcff", TOKENS, NO_TOKEN_LABEL),  # aiohttp's surrogate escape for a non-UTF-8 byte
            ("Bearer alpha", [], NO_TOKEN_LABEL),
        ],
    )
    def test_the_label_names_the_token_by_index_never_by_value(
        self, header: str, tokens: list[bytes], label: str
    ) -> None:
        """The new-node budget is keyed by which token matched, so no token text is ever kept as a key."""
        assert token_label(header, tokens) == label


def _gate(**budgets: float) -> HelloGate:
    return HelloGate(
        hellos=hello_budget(burst=budgets.get("hello_burst", 10)),
        new_nodes=new_node_budget(rate_per_s=0.001, burst=budgets.get("new_burst", 600)),
    )


class TestHelloGate:
    def test_a_first_keyed_hello_is_first_use_and_verified(self) -> None:
        """A new node id with a key is accepted as first use, verified: it may replace its own connections."""
        decision = _gate().admit("web-01", KEY_A, known=False, peer="p", label="token-0", now=0.0, wall=WALL_T0)
        assert isinstance(decision, Accept)
        assert (decision.kind, decision.verified) == (AcceptKind.FIRST_USE, True)

    def test_a_refused_new_node_leaves_no_key_record_behind(self) -> None:
        """Over the new-node budget the hello is refused and its key is not recorded, so the id stays free."""
        gate = _gate(new_burst=1)
        gate.admit("web-00", None, known=False, peer="p", label="token-0", now=0.0, wall=WALL_T0)
        decision = gate.admit("web-01", KEY_A, known=False, peer="p", label="token-0", now=0.0, wall=WALL_T0)
        assert isinstance(decision, Refusal)
        assert decision.reason is TrustReason.NEW_NODE_RATE_EXCEEDED
        assert gate.identity.get("web-01") is None

    def test_known_nodes_do_not_spend_the_new_node_budget(self) -> None:
        """A node the cache already holds reconnects whatever the token's new-node budget says."""
        gate = _gate(new_burst=1)
        gate.admit("web-00", None, known=False, peer="p", label="token-0", now=0.0, wall=WALL_T0)
        decision = gate.admit("web-00", None, known=True, peer="p", label="token-0", now=1.0, wall=WALL_T0)
        assert isinstance(decision, Accept)

    def test_the_hello_budget_comes_before_the_key_check(self) -> None:
        """A hello loop is refused with rate_exceeded even with the right key: the loop itself is the cost."""
        gate = _gate(hello_burst=2)
        for _ in range(2):
            assert isinstance(
                gate.admit("web-01", KEY_A, known=True, peer="p", label="t", now=0.0, wall=WALL_T0), Accept
            )
        decision = gate.admit("web-01", KEY_A, known=True, peer="p", label="t", now=0.0, wall=WALL_T0)
        assert isinstance(decision, Refusal)
        assert decision.reason is TrustReason.RATE_EXCEEDED

    def test_another_key_is_refused_before_the_new_node_budget_is_spent(self) -> None:
        """A mismatching key is a 4403 whatever the budgets say, and costs the token no new-node slot."""
        gate = _gate(new_burst=1)
        gate.admit("web-01", KEY_A, known=True, peer="p", label="t", now=0.0, wall=WALL_T0)
        decision = gate.admit("web-01", KEY_B, known=False, peer="p", label="t", now=0.0, wall=WALL_T0)
        assert isinstance(decision, Refusal)
        assert decision.reason is TrustReason.NODE_KEY_MISMATCH
        assert isinstance(gate.admit("web-02", None, known=False, peer="p", label="t", now=0.0, wall=WALL_T0), Accept)
