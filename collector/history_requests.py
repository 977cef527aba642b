"""A viewer's ``history_request``s (docs/protocol.md 5.9 and 5.10): their pacing, and answering those due.

A subscriber keeps its pending requests, one per node and kind (plain or ranged), the newest
winning. ``answer`` sends every one its budget admits, oldest first: a plain request from the
node's in-memory window at ``HISTORY_REQUESTS_PER_S``, a ranged one with the tiered answer of the
HTTP history API (``collector.history_query``, read and packed in worker threads) at the pace of
``RangeRequests``. A request over its pace stays pending, never refused; ``rewake`` brings the
send loop back when the next may go.

Not here: reading requests off the socket and the 4430 for a flood of them, or the send itself
(``collector.subscribe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from collector import wire
from collector.history import HistoryRing
from collector.history_query import RangeRequests, query_range, range_map, resolve_range
from collector.runtime import CollectorRuntime
from shared.codec import encode, encode_json
from shared.messages import HistoryRequest, NodeHistory

# Plain history requests answered per subscriber: a viewer asks one per node it opens (a click); 10/s
# with bursts of 20 never delays a person, and bounds what a flood costs (finding 16a: 42 % CPU).
HISTORY_REQUESTS_PER_S = 10.0
HISTORY_REQUEST_BURST = 20
# Requests of any kind a subscriber may send: past 50/s (bursts of 200) it is flooding, and is closed
# with 4430 ``rate_exceeded`` (docs/protocol.md 4.2); even a script clicking every node stays under it.
REQUESTS_IN_PER_S = 50.0
REQUESTS_IN_BURST = 200
# A viewer asking for more histories than this before we sent the first ones is flooding; extra requests are dropped.
# (A request for a node and kind already pending replaces it instead: the newest range is the one a chart wants.)
MAX_PENDING_HISTORY_REQUESTS = 64

# Pending requests are keyed by node id and whether they ask for a range: one of each kind per node.
RequestKey = tuple[str, bool]
SendFrame = Callable[[bytes | str], Awaitable[None]]


class HistorySubscriber(Protocol):
    """What answering needs of a subscriber (``collector.subscribe.Subscriber``)."""

    json_format: bool
    history_requests: dict[RequestKey, HistoryRequest]  # oldest first
    range_requests: RangeRequests
    plain_requests: RangeRequests
    wake: asyncio.Event
    rewake: asyncio.TimerHandle | None


async def answer(runtime: CollectorRuntime, sub: HistorySubscriber, send_frame: SendFrame) -> None:
    """Answer every pending request, oldest first; one over its budget waits for its token."""
    for key in list(sub.history_requests):
        request = sub.history_requests.get(key)
        if request is None:
            continue
        budget = sub.range_requests if request.ranged else sub.plain_requests
        if not budget.take(runtime.clock()):
            continue  # stays pending: rewake brings the send loop back once a token is there
        del sub.history_requests[key]  # before any await: a newer request for the key is kept
        if request.ranged:
            await send_frame(await range_frame(runtime, request, json_format=sub.json_format))
        else:
            record = runtime.cache.get(request.node_id)
            history = record.history.to_history() if record is not None else HistoryRing(1).to_history()
            message = NodeHistory(node_id=request.node_id, history=history)
            await send_frame(encode_json(message) if sub.json_format else encode(message))
    rewake(runtime, sub)


async def range_frame(runtime: CollectorRuntime, request: HistoryRequest, *, json_format: bool) -> bytes | str:
    """The tiered answer as one frame: the store is read and the frame built in worker threads."""
    wall = runtime.wall_clock()
    from_at, to_at, step_s = resolve_range(request.from_at, request.to_at, request.step_s, wall)
    result = await query_range(runtime, request.node_id, from_at, to_at, step_s)
    answer_map = range_map(result, wall, from_at, to_at)
    return await asyncio.to_thread(wire.range_history_frame, request.node_id, answer_map, json_format)


def rewake(runtime: CollectorRuntime, sub: HistorySubscriber) -> None:
    """Wake the send loop when the next paced request may be answered (if one is pending)."""
    if sub.rewake is not None:
        sub.rewake.cancel()
        sub.rewake = None
    if sub.history_requests:
        now = runtime.clock()
        kinds = {ranged for _, ranged in sub.history_requests}
        delay_s = min((sub.range_requests if ranged else sub.plain_requests).wait_s(now) for ranged in kinds)
        sub.rewake = asyncio.get_running_loop().call_later(delay_s, sub.wake.set)
