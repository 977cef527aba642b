"""The agent asks to be acked at half its backlog, so paced acks can never make it drop a sample."""

from __future__ import annotations

import pytest

from agent.backlog import Backlog
from agent.config import BACKLOG_SECONDS
from agent.runner import TYPICAL_FRAME_BYTES, ack_every
from shared.limits import MAX_ACK_EVERY


@pytest.mark.parametrize(
    ("max_samples", "max_bytes", "expected"),
    [
        (BACKLOG_SECONDS, None, BACKLOG_SECONDS // 2),  # the default hour at 1 Hz: the 5 s bound rules
        (3, None, 1),  # a tiny backlog is acked every sample, as before ack_every existed
        (1, None, 1),
        (BACKLOG_SECONDS, 10 * TYPICAL_FRAME_BYTES, 5),  # bounded in bytes: counted in typical frames
        (BACKLOG_SECONDS, 100, 1),  # fewer bytes than one frame still means "ack every sample"
        (10 * MAX_ACK_EVERY, None, MAX_ACK_EVERY),  # within what the protocol accepts
    ],
)
def test_ack_every_is_half_the_backlog(max_samples: int, max_bytes: int | None, expected: int) -> None:
    """Unacked samples fill at most half the backlog; the rest is room for an outage."""
    assert ack_every(Backlog(max_samples, max_bytes)) == expected
