"""What a sans-IO protocol session asks its shell to do: the actions both ends of ``/api/v1/ingest`` share.

The agent's ``AgentSession`` (``agent.session``) and the collector's
``IngestSession`` (``collector.ingest_session``) are fed what happened and
return what to do, as values the shell executes in order (h11's
``Connection`` is the model). Three of those mean the same on both sides and
are defined here once; each side adds its own (the agent: ping, pong, log
line, hello acked, outcome; the collector: ``Drop``).

Not here: when a session emits them, or any I/O. Plain dataclasses with no
pydantic, so the agent imports this module as it imports ``shared.limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Close", "SendFrame", "WakeAt"]


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send ``data`` as one binary websocket frame."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the websocket with ``code`` and ``reason`` (the close frame's text), then end the connection.

    ``detail`` is the longer story for the shell's log line; a session with nothing to add leaves it empty.
    """

    code: int
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call the session's ``tick`` at monotonic time ``at`` (or soon after); it replaces any earlier ``WakeAt``."""

    at: float
