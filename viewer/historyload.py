"""Pure: the detail pane's history ranges, the ranged request each one sends, and what its answer draws.

A range is picked from ``RANGES``: "15 min" is the live window (the node's in-memory history,
then one point per update, as before); the others send a ranged ``history_request``
(docs/protocol.md 5.9) ending now, with a step that makes the collector pick its tier:
1 h raw points, 6 h and 24 h 1-minute buckets, 7 d 10-minute buckets of the 1-minute tier,
30 d 1-hour buckets. ``PendingRange`` remembers the one request in flight, so an answer to
an older request (another node, an earlier click) is never drawn. ``RangeDrawing`` turns an
answer into arrays: the average line, the min/max band of rollup tiers, and a break before
every point that follows one of the answer's ``gaps`` (a gap is explicit, never interpolated).

Not here: Qt, widgets or the network (``viewer.rangepicker``, ``viewer.overview``, ``viewer.worker``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.messages import HistoryRange, HistoryRequest, RangeSeries

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# How long a ranged request may go unanswered before the pane says so. The collector paces
# ranged requests at 2 a second after a burst of 10 (docs/protocol.md 5.9): a few clicks in a
# row wait a few seconds, never this long.
RANGE_TIMEOUT_S: Final = 15.0
# The seven series of an answer, as the overview charts read them (History's columns, one source: the wire model).
COLUMNS: Final = tuple(RangeSeries.model_fields)


@dataclass(frozen=True, slots=True)
class RangeChoice:
    """One button of the picker: how far back it shows, and the step it asks for (None: the finest)."""

    label: str
    span_s: float
    step_s: float | None
    live: bool = False  # the in-memory window fed by updates; no ranged request


# Steps: each asks for the tier the issue names (the collector raises any step to keep <= 2,000 points).
RANGES: Final = (
    RangeChoice("15 min", 900.0, None, live=True),
    RangeChoice("1 h", 3600.0, None),  # raw samples, bucketed to ~2 s by the collector
    RangeChoice("6 h", 6 * 3600.0, 60.0),  # 360 one-minute buckets
    RangeChoice("24 h", 86400.0, 60.0),  # 1,440 one-minute buckets
    RangeChoice("7 d", 7 * 86400.0, 600.0),  # 1,008 ten-minute buckets of the 1-minute tier
    RangeChoice("30 d", 30 * 86400.0, 3600.0),  # 720 one-hour buckets
)
LIVE: Final = RANGES[0]


def choice_named(label: str) -> RangeChoice:
    """The range whose button reads ``label``."""
    for choice in RANGES:
        if choice.label == label:
            return choice
    raise RuntimeError(f"expected one of {[c.label for c in RANGES]}, got {label!r}")


def range_request(node_id: str, choice: RangeChoice, now_at: float) -> HistoryRequest:
    """The ranged request for ``choice`` ending at ``now_at`` (the collector's clock, epoch s)."""
    if choice.live:
        raise RuntimeError(f"expected a stored range, got the live window {choice.label!r}")
    return HistoryRequest(node_id=node_id, from_at=max(0.0, now_at - choice.span_s), to_at=now_at, step_s=choice.step_s)


class PendingRange:
    """The one ranged request in flight, and when it was sent (monotonic seconds)."""

    __slots__ = ("request", "sent_at")

    def __init__(self) -> None:
        self.request: HistoryRequest | None = None
        self.sent_at = 0.0

    def start(self, request: HistoryRequest, now: float) -> None:
        """Wait for ``request``'s answer; any earlier one is forgotten."""
        self.request, self.sent_at = request, now

    def clear(self) -> None:
        """Wait for nothing (answered, failed, or the live window chosen)."""
        self.request = None

    @property
    def waiting(self) -> bool:
        """Whether an answer is awaited."""
        return self.request is not None

    def answers(self, answer: HistoryRange) -> bool:
        """Whether ``answer`` is the awaited one: same node and range (the collector echoes both bounds)."""
        request = self.request
        return (
            request is not None
            and answer.node_id == request.node_id
            and answer.from_at == request.from_at
            and answer.to_at == request.to_at
        )

    def overdue(self, now: float, timeout_s: float = RANGE_TIMEOUT_S) -> bool:
        """Whether the awaited answer is later than ``timeout_s``."""
        return self.request is not None and now - self.sent_at >= timeout_s


def _breaks(x: FloatArray, answer: HistoryRange) -> BoolArray:
    return breaks_after_gaps(x, answer.gaps)


def _values(series: RangeSeries, column: str) -> FloatArray:
    return np.asarray([math.nan if v is None else v for v in getattr(series, column)], dtype=float)


def breaks_after_gaps(x: FloatArray, gaps: list[list[float]]) -> BoolArray:
    """True at each point that follows a listed gap (a point before it exists and lies at or before its start)."""
    mask = np.zeros(x.size, dtype=bool)
    for gap_from, gap_to in gaps:
        index = int(np.searchsorted(x, gap_to, side="left"))
        if 0 < index < x.size and x[index - 1] <= gap_from:
            mask[index] = True
    return mask


@dataclass(frozen=True, slots=True)
class RangeDrawing:
    """An answer as arrays: x, per column the average (NaN: none) and, for rollups, min and max."""

    node_id: str
    tier: str
    step_s: float
    from_at: float
    to_at: float
    x: FloatArray
    avg: dict[str, FloatArray]
    low: dict[str, FloatArray] | None
    high: dict[str, FloatArray] | None
    breaks: BoolArray
    gaps: list[tuple[float, float]]

    @classmethod
    def of(cls, answer: HistoryRange) -> RangeDrawing:
        """The drawing of ``answer``: every listed gap breaks the lines and is shaded."""
        x = np.asarray(answer.at, dtype=float)
        low, high = answer.min, answer.max
        avg = {c: _values(answer.avg, c) for c in COLUMNS}
        lows = None if low is None else {c: _values(low, c) for c in COLUMNS}
        highs = None if high is None else {c: _values(high, c) for c in COLUMNS}
        gaps = [(float(g[0]), float(g[1])) for g in answer.gaps]
        span = (answer.from_at, answer.to_at)
        return cls(answer.node_id, answer.tier, answer.step_s, *span, x, avg, lows, highs, _breaks(x, answer), gaps)

    @property
    def points(self) -> int:
        """Points per series."""
        return int(self.x.size)


def _step_words(step_s: float) -> str:
    if step_s < 60.0:
        return f"{step_s:.3g} s"
    if step_s < 3600.0:
        return f"{step_s / 60.0:.3g} min"
    return f"{step_s / 3600.0:.3g} h"


def describe_drawn(choice: RangeChoice, drawing: RangeDrawing) -> str:
    """What the chart shows, in words: e.g. "24 h · 1 min averages of the 1m tier, min-max band · 1,412 points"."""
    if not drawing.points:
        return f"{choice.label} · no samples stored in this range"
    if drawing.low is None:
        words = "raw samples"
    else:
        words = f"{_step_words(drawing.step_s)} averages of the {drawing.tier} tier, min-max band"
    gaps = len(drawing.gaps)
    gap_words = "" if not gaps else f" · {gaps} gap{'s' if gaps > 1 else ''}"
    return f"{choice.label} · {words} · {drawing.points:,} points{gap_words}"


def describe_failure(choice: RangeChoice, why: str) -> str:
    """Why ``choice`` could not be drawn, in words."""
    return f"{choice.label} not loaded: {why}"
