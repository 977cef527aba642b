"""A real subscriber that writes down every liveness transition it sees, with the time it saw it.

Use it as ``async with StateRecorder(base_url) as rec:``; it returns once the
snapshot is in. Not a viewer: it keeps states and arrival times, nothing else.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode
from shared.messages import Snapshot, Update


@dataclass(frozen=True)
class Transition:
    """One liveness state a subscriber saw a node enter, and when (its own monotonic clock)."""

    seen_mono: float
    node_id: str
    state: str
    reason: str | None
    state_since_at: float
    last_seen_at: float | None
    connected: bool


class StateRecorder:
    """A real subscriber that records each node's state transitions and every message's arrival time."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.url = base.replace("http://", "ws://") + "/api/v1/subscribe"
        self.headers = headers or {}
        self.transitions: list[Transition] = []
        self.message_times: list[float] = []
        self.close_code: int | None = None
        self._last: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._snapshot = asyncio.Event()

    async def __aenter__(self) -> StateRecorder:
        self._session = aiohttp.ClientSession()
        ws = await self._session.ws_connect(self.url, headers=self.headers, heartbeat=5.0, max_msg_size=2**28)
        self._task = asyncio.create_task(self._run(ws))
        async with asyncio.timeout(10):
            await self._snapshot.wait()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def running(self) -> bool:
        """True while the subscription is open."""
        return self._task is not None and not self._task.done()

    async def _run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async with ws:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    continue
                now = time.monotonic()
                self.message_times.append(now)
                message = decode(msg.data, COLLECTOR_LIMITS)
                if isinstance(message, Snapshot | Update):
                    for entry in message.nodes:
                        self._note(now, entry.status)
                if isinstance(message, Snapshot):
                    self._snapshot.set()
            self.close_code = ws.close_code

    def _note(self, now: float, status: Any) -> None:
        if self._last.get(status.node_id) != status.state:
            self._last[status.node_id] = status.state
            self.transitions.append(
                Transition(
                    now,
                    status.node_id,
                    status.state,
                    status.reason,
                    status.state_since_at,
                    status.last_seen_at,
                    status.connected,
                )
            )

    def states(self, node_id: str, since_mono: float = 0.0) -> list[str]:
        """The states ``node_id`` entered after ``since_mono``, in order."""
        return [t.state for t in self.transitions if t.node_id == node_id and t.seen_mono >= since_mono]

    def first(self, node_id: str, state: str, since_mono: float) -> Transition | None:
        """The first transition of ``node_id`` into ``state`` after ``since_mono``."""
        return next(
            (t for t in self.transitions if t.node_id == node_id and t.state == state and t.seen_mono >= since_mono),
            None,
        )
