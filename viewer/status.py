"""The words of the window's status: the connection indicator, the banner across the table, the counts.

Pure functions of the link's state, the clocks and the table's numbers; no Qt. The
banner says what is wrong in words while disconnected (the cause, the next retry, and
"as of HH:MM:SS" for what the table still shows), what to do with an empty collector,
and when the row cap turned nodes away. The window shows every string as plain text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.messages import NodeState
from viewer.format import format_clock
from viewer.linkstate import LinkState, Phase


class BannerKind(StrEnum):
    """How loud the banner is."""

    PROBLEM = "problem"  # disconnected, or the row cap reached
    HINT = "hint"  # nothing wrong, something to do


@dataclass(frozen=True, slots=True)
class Banner:
    """One banner: its text and how loud it is."""

    text: str
    kind: BannerKind


def _countdown(state: LinkState, now_s: float) -> str:
    # Rounded up: "retry in 0 s" would read as "never".
    return "" if state.retry_at is None else f"{max(0, math.ceil(state.retry_at - now_s - 0.05))} s"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def describe_state(state: LinkState, now_s: float) -> str:
    """The connection indicator's text for ``state`` at monotonic time ``now_s``."""
    countdown = _countdown(state, now_s)
    if state.phase is Phase.CONNECTED:
        return "connected"
    if state.phase is Phase.STOPPED:
        return "stopped"
    if state.phase is Phase.AUTH_FAILED:  # the words say what to do: pass --token, or fix it
        return (state.detail or "auth failed") + (f"; retrying in {countdown}" if countdown else "")
    verb = "connecting" if state.phase is Phase.CONNECTING else "reconnecting"
    return f"{verb}: retry in {countdown}" if countdown else f"{verb}..."


def banner(
    state: LinkState,
    now_s: float,
    *,
    collector_url: str,
    rows: int,
    as_of_at: float | None,
    refused_nodes: int,
    max_rows: int,
) -> Banner | None:
    """The banner across the table, or None when all is well."""
    lines: list[str] = []
    if state.phase is not Phase.CONNECTED:
        if state.retry_at is None and state.phase is not Phase.STOPPED:
            line = f"Connecting to {collector_url}..."
        else:
            line = _sentence(f"Not connected to {collector_url}: {state.detail or state.phase.value}")
        if state.retry_at is not None:
            line += f" Retrying in {_countdown(state, now_s)}." if state.retry_at > now_s else " Retrying now."
        if as_of_at is not None and rows:
            line += f" The table shows the fleet as of {format_clock(as_of_at)}."
        lines.append(line)
    elif rows == 0:
        lines.append(f"No nodes yet: start `nodewatch agent --collector {collector_url}` on a node.")
    if refused_nodes:
        lines.append(
            f"Row limit reached: showing {max_rows:,} nodes; {refused_nodes:,} updates for further nodes were ignored."
        )
    if not lines:
        return None
    hint_only = state.phase is Phase.CONNECTED and not refused_nodes
    return Banner("\n".join(lines), BannerKind.HINT if hint_only else BannerKind.PROBLEM)


def counts_text(counts: Mapping[NodeState, int], as_of_at: float | None) -> str:
    """E.g. '3 nodes · 2 online · 0 stale · 1 offline', prefixed 'as of HH:MM:SS:' while disconnected."""
    text = f"{sum(counts.values())} nodes · {counts['online']} online · {counts['stale']} stale · "
    text += f"{counts['offline']} offline"
    return text if as_of_at is None else f"as of {format_clock(as_of_at)}: {text}"
