"""The one definition of the summary statistics every bench prints: nearest-rank percentiles and the median.

``percentile(values, q)`` is the nearest-rank percentile: the smallest measured
value with at least ``q * N`` of the ``N`` values at or below it, that is
``sorted(values)[ceil(q * N) - 1]``; ``q = 0`` gives the minimum and ``q = 1``
the maximum. It is always a value that was measured, never interpolated, so a
p99 of 150 ms means some sample really took 150 ms. (Before this module
``bench/e2e.py`` took ``sorted[int(q * N)]``, one rank high, and
``bench/viewer_stall.py`` rounded instead of taking the ceiling.)

``median(values)`` is the middle value, the mean of the two middle ones for an
even count (``statistics.median``); a table's "p50" column is ``percentile(v, 0.5)``.

Both return NaN for no values: an empty run must print as ``nan``, not as 0 ms.
Not here: means, rates, or anything that reads a clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

_RANK_DIGITS = 9  # q * N is rounded this far before the ceiling, so 0.07 * 100 = 7.000000000000001 is rank 7


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``q`` from 0 to 1) of ``values``; NaN for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"expected a quantile from 0 to 1, got {q!r}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(round(q * len(ordered), _RANK_DIGITS)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (mean of the middle two for an even count); NaN for no values."""
    listed = list(values)
    return float(statistics.median(listed)) if listed else math.nan
