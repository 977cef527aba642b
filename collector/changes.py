"""What the node cache tells its shell: which nodes changed and how, and what to do after each event.

Plain values, no behaviour: ``NodeCache`` returns them, the shells (ingest,
liveness, fan-out) act on them. Not here: the state itself (``collector.cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collector.node_record import NodeRecord


class ChangeKind(IntFlag):
    """What about a node changed, so a subscriber knows which NodeEntry fields to send."""

    STATUS = 1
    SAMPLE = 2
    FACTS = 4
    REMOVED = 8


STATUS_AND_SAMPLE = ChangeKind.STATUS | ChangeKind.SAMPLE
REMOVED_BIT = ChangeKind.REMOVED.value


@dataclass(frozen=True, slots=True)
class Change:
    """One node changed in the ways ``kind`` says."""

    node_id: str
    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class HelloResult:
    """What the shell does after a hello: ack ``ack_seq``, close ``replaced_conn``, publish ``changes``."""

    ack_seq: int
    replaced_conn: int | None
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class ExpireResult:
    """What the shell does after a liveness pass: publish ``changes``, abort ``drop_conns``.

    A node that goes offline while its connection is still open has a dead
    peer or a half-open socket behind it (the collector does not ping agents):
    the shell aborts that connection; a live agent reconnects and replays.
    """

    changes: list[Change]
    drop_conns: list[int]


class HeartbeatResult(NamedTuple):
    """What the shell does after a heartbeat; ``current`` is False for a connection that was replaced.

    ``record`` is the node's (None when not ``current``), so the shell need not look it up again.
    A tuple, not a frozen dataclass: one is built per heartbeat, and a tuple costs a third as much.
    """

    ack_seq: int
    duplicate: bool
    current: bool
    changes: list[Change]
    record: NodeRecord | None = None
