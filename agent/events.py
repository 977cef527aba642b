"""What a link to the collector reports, as values: the upgrade's answer, open, failed, lost.

``agent.wsclient`` reads the answer to the upgrade request (``Upgraded`` or
``Refused``); ``agent.transport`` turns a whole attempt into ``Opened``, then
frames, then ``Lost``, or into ``Failed`` (or the ``Refused`` it read) before
the websocket opened; ``agent.pusher`` decides what to do about each. Not
here: frames (``agent.wsclient``), messages (``agent.wire``), or any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refused:
    """Any status but 101: the server said no, and why (``headers`` keys are lower case)."""

    status: int
    phrase: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """101 Switching Protocols, checked; ``rest`` is what the server sent after the head (frames already)."""

    rest: bytes


UpgradeAnswer = Upgraded | Refused  # what ``agent.wsclient.ResponseReader`` reads


@dataclass(frozen=True, slots=True)
class Opened:
    """The upgrade succeeded: the websocket is open."""


@dataclass(frozen=True, slots=True)
class Ended:
    """An attempt or a websocket that is over; ``why`` is for the log line."""

    why: str


@dataclass(frozen=True, slots=True)
class Failed(Ended):
    """The attempt failed before the websocket opened: no route, refused, TLS, not a websocket, too slow."""


@dataclass(frozen=True, slots=True)
class Lost(Ended):
    """The open websocket ended without a close frame from the server (EOF, reset, bad frames, over budget)."""

    close_code: int | None = None  # ours, when we closed it for the collector's fault; None: it just ended
