"""The agent's bounded backlog of encoded heartbeats that the collector has not acked yet.

Every sample goes through here until a cumulative ack covers it, so a
collector restart loses nothing while the buffer holds. Pure: no I/O, no
clock. Not here: sending (``agent.session`` decides, ``agent.pusher`` sends) or encoding.
"""

from __future__ import annotations

from collections import deque


class Backlog:
    """A FIFO of (seq, frame) bounded by sample count and optionally by bytes; drops the oldest."""

    def __init__(self, max_samples: int, max_bytes: int | None = None) -> None:
        if max_samples < 1:
            raise RuntimeError(f"expected max_samples >= 1, got {max_samples!r}")
        if max_bytes is not None and max_bytes < 1:
            raise RuntimeError(f"expected max_bytes >= 1 or None, got {max_bytes!r}")
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.dropped = 0
        self.bytes = 0
        self._items: deque[tuple[int, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def append(self, seq: int, frame: bytes) -> None:
        """Add the newest sample; drop the oldest ones while over a limit."""
        if self._items and seq <= self._items[-1][0]:
            raise RuntimeError(f"expected seq > {self._items[-1][0]}, got {seq}")
        self._items.append((seq, frame))
        self.bytes += len(frame)
        while len(self._items) > self.max_samples or (
            self.max_bytes is not None and self.bytes > self.max_bytes and len(self._items) > 1
        ):
            _, old = self._items.popleft()
            self.bytes -= len(old)
            self.dropped += 1

    def ack(self, seq: int) -> int:
        """Forget every sample up to and including ``seq``; return how many were forgotten."""
        removed = 0
        while self._items and self._items[0][0] <= seq:
            _, frame = self._items.popleft()
            self.bytes -= len(frame)
            removed += 1
        return removed

    def after(self, seq: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """The held samples with a seq above ``seq``, oldest first, at most ``limit`` of them.

        Walks from the newest end, so the live path (one new frame) costs O(1), not O(backlog).
        """
        newer: list[tuple[int, bytes]] = []
        for item in reversed(self._items):
            if item[0] <= seq:
                break
            newer.append(item)
        newer.reverse()
        return newer if limit is None else newer[:limit]
