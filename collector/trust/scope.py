"""Agent tokens scoped to node-id patterns: one team's token cannot register another team's nodes.

An agent-token file line is a token, then optionally whitespace and a
comma-separated list of shell-style patterns (``*`` any run, ``?`` one
character), matched case-sensitively against the hello's whole node id::

    s3cr3t-web   web-*,db-??
    s3cr3t-all

A line with no patterns is an unscoped token, as every line was before: any
node id. ``parse_token_spec`` splits one line (``CollectorConfig.agent_tokens``
holds the lines as read); ``TokenScope.allows`` is the check
``HelloGate.admit`` makes first, refusing with 4403 ``node_id_not_allowed``.

Pure. Not here: reading the file (``collector.cli.read_tokens``), which token a
request carries (``collector.trust.gate.token_label``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

# What a pattern may contain: node-id characters (shared.limits.NODE_ID_PATTERN) and the two wildcards.
# No "[...]" classes: a pattern an operator can read at a glance is one an operator gets right.
_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._:@*?-]+$")
# Patterns per token: a team's naming scheme, not a node list (a node list belongs in pins, 3.1).
MAX_PATTERNS = 64


@dataclass(frozen=True, slots=True)
class TokenScope:
    """The node ids one agent token may speak for; ``patterns`` empty means any."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] | None

    def allows(self, node_id: str) -> bool:
        """True if ``node_id`` matches one of the patterns (always, for an unscoped token)."""
        return self._regex is None or self._regex.fullmatch(node_id) is not None

    def describe(self) -> str:
        """The patterns as the token file spells them, for a refusal's detail."""
        return ",".join(self.patterns) if self.patterns else "*"


ANY_NODE = TokenScope((), None)


def make_scope(patterns: Iterable[str]) -> TokenScope:
    """A scope over ``patterns``; ValueError names the first bad one."""
    kept = tuple(patterns)
    if len(kept) > MAX_PATTERNS:
        raise ValueError(f"expected at most {MAX_PATTERNS} node-id patterns per token, got {len(kept)}")
    for pattern in kept:
        if not _PATTERN_CHARS.match(pattern):
            raise ValueError(
                f"expected node-id patterns of letters, digits, '._:@-' and the wildcards '*' '?', got {pattern[:80]!r}"
            )
    if not kept:
        return ANY_NODE
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in kept))
    return TokenScope(kept, regex)


def parse_token_spec(line: str) -> tuple[str, TokenScope]:
    """``(token, scope)`` of one token-file line: ``TOKEN`` or ``TOKEN  pattern,pattern``.

    ValueError (never naming the token) for patterns that are empty or carry other characters.
    """
    token, *rest = line.split(None, 1)
    if not rest:
        return token, ANY_NODE
    patterns = [p.strip() for p in rest[0].split(",")]
    if any(not p for p in patterns):
        raise ValueError("expected comma-separated node-id patterns after the token, got an empty one")
    return token, make_scope(patterns)


def parse_token_specs(lines: Iterable[str]) -> tuple[list[str], list[TokenScope]]:
    """Tokens and their scopes, index for index, in a stable order (the budget labels ``token-<i>`` follow it).

    ValueError for a token listed twice: which scope it has would depend on the order of lines.
    """
    specs = sorted((parse_token_spec(line) for line in lines if line.strip()), key=lambda spec: spec[0])
    tokens = [token for token, _ in specs]
    if len(set(tokens)) != len(tokens):
        raise ValueError("expected each agent token on one line, got a token listed twice")
    return tokens, [scope for _, scope in specs]
