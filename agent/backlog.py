"""The agent's bounded backlog of encoded heartbeats that the collector has not acked yet.

Every sample goes through here until a cumulative ack covers it, so a
collector restart loses nothing while the buffer holds. Pure: no I/O, no
clock. Not here: sending (``agent.pusher``) or encoding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator


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

    def after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Yield the held samples with a seq above ``seq``, oldest first."""
        for item in list(self._items):
            if item[0] > seq:
                yield item

    @property
    def newest_seq(self) -> int | None:
        """The seq of the newest held sample, if any."""
        return self._items[-1][0] if self._items else None
