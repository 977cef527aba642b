"""The hello's trust checks in one place: hello budget, node identity, new-node budget, which token matched.

``HelloGate`` is one per collector. For each hello the ingest port asks it
``admit(...)``, which returns an ``Accept`` (go on; ``verified`` lets the hello
replace its node's older connection) or a ``Refusal`` to close with, in this
order:

0. the agent token's scope (``collector.trust.scope``): a node id outside the
   patterns of the token that matched is refused with 4403
   ``node_id_not_allowed``, before it costs that node id any budget;
1. hellos per (peer address, node id) (``hello_budget``): a reconnect or
   takeover loop is refused with 4430 ``rate_exceeded``. Keyed by address
   too, so another address's hellos for a node id cannot spend the real
   agent's budget (and earn it a 4430 and the refusal cooldown,
   ``collector.trust.penalty``);
2. the node key (``IdentityTable.check``): 4403 ``node_key_mismatch`` or
   ``node_key_required``;
3. for a node id the cache does not hold, new node ids per agent token
   (``new_node_budget``): 4430 ``new_node_rate_exceeded``. A key recorded on
   first use by a hello refused here is dropped again, so the refused hello
   leaves nothing behind.

``token_label`` says which agent token a request's ``Authorization`` header
carries, as ``token-<index>``: the budget is keyed by that label, never by the
token. Pure: values in, values out; ``now`` is monotonic, ``wall`` epoch
seconds. Not here: the node table's eviction (``nodetable.choose_victim``,
run by the port, which holds the cache) or any socket.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from collector.trust.budget import KeyedBudget, hello_budget, new_node_budget
from collector.trust.identity import Accept, AcceptKind, IdentityTable
from collector.trust.nodetable import peer_key
from collector.trust.refusal import Refusal, TrustReason
from collector.trust.scope import ANY_NODE, TokenScope

# The label of every connection when the collector checks no agent token (loopback, or --insecure).
NO_TOKEN_LABEL = "no-token"  # noqa: S105 - a budget label, not a secret


def token_label(authorization: str, tokens: list[bytes]) -> str:
    """``token-<i>`` for the agent token ``authorization`` carries (``Bearer <token>``), in constant time per token.

    ``NO_TOKEN_LABEL`` when no tokens are configured, or when none matches (the auth check has then
    already refused the request, so that case is only a backstop).
    """
    _, _, presented = authorization.partition(" ")
    try:
        candidate = presented.strip().encode()
    except UnicodeEncodeError:
        return NO_TOKEN_LABEL
    found = -1
    for index, token in enumerate(tokens):  # no early exit: every token is compared
        if hmac.compare_digest(candidate, token):
            found = index
    return NO_TOKEN_LABEL if found < 0 else f"token-{found}"


class HelloGate:
    """The trust checks every hello passes before the node cache sees it; see the module docstring."""

    __slots__ = ("hellos", "identity", "new_nodes", "scopes")

    def __init__(
        self,
        identity: IdentityTable | None = None,
        *,
        hellos: KeyedBudget | None = None,
        new_nodes: KeyedBudget | None = None,
        logger: logging.Logger | None = None,
        scopes: Mapping[str, TokenScope] | None = None,
    ) -> None:
        """``scopes`` maps a token label (``token-<i>``) to its node-id patterns; a label not in it: any node id."""
        self.scopes: Mapping[str, TokenScope] = scopes if scopes is not None else {}
        self.identity = identity if identity is not None else IdentityTable(logger=logger)
        self.hellos = hellos if hellos is not None else hello_budget()
        self.new_nodes = new_nodes if new_nodes is not None else new_node_budget()

    def admit(
        self,
        node_id: str,
        credential: str | None,
        *,
        known: bool,
        peer: str,
        label: str,
        now: float,
        wall: float,
    ) -> Accept | Refusal:
        """The verdict on one hello for ``node_id``; ``known`` if the node cache holds that node id."""
        scope = self.scopes.get(label, ANY_NODE)
        if not scope.allows(node_id):
            detail = f"expected a node id matching this agent token's patterns {scope.describe()!r}, got {node_id!r}"
            return Refusal(TrustReason.NODE_ID_NOT_ALLOWED, detail[:1000])
        refusal = self.hellos.admit(f"{peer_key(peer)} {node_id}", now)  # a node id has no space
        if refusal is not None:
            return refusal
        decision = self.identity.check(node_id, credential, peer=peer, now=now, wall=wall)
        if isinstance(decision, Refusal) or known:
            return decision
        refusal = self.new_nodes.admit(label, now)
        if refusal is None:
            return decision
        if decision.kind is AcceptKind.FIRST_USE:
            self.identity.forget(node_id)  # the refused hello must not have claimed the node id
        return refusal
