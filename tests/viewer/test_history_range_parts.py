"""The range picker's parts without a collector: requests per range, gap breaks, the request in flight, the words.

Pure tables for ``viewer.historyload`` and ``viewer.crosshair``'s readout, and ``RangeLoader``
with a real picker widget offscreen and a fake clock. Not here: a real collector and store
(``test_history_range.py``, ``test_crosshair.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from shared.messages import HistoryRange, HistoryRequest, RangeSeries
from tests.support.clock import FakeClock
from viewer.crosshair import band_text, readout_text
from viewer.historyload import (
    COLUMNS,
    LIVE,
    PendingRange,
    RangeDrawing,
    breaks_after_gaps,
    choice_named,
    describe_drawn,
    range_request,
)
from viewer.linkstate import LinkState, Phase
from viewer.rangepicker import RangeLoader, RangePicker

NOW = 1_795_000_000.0


def answer(request: HistoryRequest, at: list[float], gaps: list[list[float]], *, rollup: bool) -> HistoryRange:
    """The collector's answer to ``request``: cpu 10, 20, ... at ``at``, other series None at the second point."""
    values = {
        c: [float(10 * (i + 1)) if c == "cpu_percent" or i != 1 else None for i in range(len(at))] for c in COLUMNS
    }
    series = RangeSeries(**values)
    assert request.from_at is not None
    assert request.to_at is not None
    extra: dict[str, Any] = {"min": series, "max": series} if rollup else {"seq": list(range(1, len(at) + 1))}
    return HistoryRange(
        server_time_at=NOW, from_at=request.from_at, to_at=request.to_at, node_id=request.node_id,
        tier="1m" if rollup else "raw", step_s=60.0 if rollup else 1.0, at=at, count=[1] * len(at),
        avg=series, gaps=gaps, **extra,
    )  # fmt: skip


class TestRangeRequest:
    @pytest.mark.parametrize(
        ("label", "span_s", "step_s"),
        [("1 h", 3600.0, None), ("6 h", 21600.0, 60.0), ("24 h", 86400.0, 60.0), ("7 d", 604800.0, 600.0),
         ("30 d", 2592000.0, 3600.0)],
    )  # fmt: skip
    def test_each_range_asks_its_span_ending_now_at_the_step_of_its_tier(
        self, label: str, span_s: float, step_s: float | None
    ) -> None:
        """A picked range asks from now minus its span to now, at the step that picks the tier the issue names."""
        request = range_request("web-1", choice_named(label), NOW)
        assert request.ranged
        assert (request.from_at, request.to_at, request.step_s) == (NOW - span_s, NOW, step_s)

    def test_the_live_window_is_no_ranged_request(self) -> None:
        """ "15 min" is the in-memory window, so building a ranged request for it is a programming error."""
        with pytest.raises(RuntimeError, match="live window"):
            range_request("web-1", LIVE, NOW)


class TestBreaks:
    @pytest.mark.parametrize(
        ("gaps", "expected"),
        [
            ([], [False] * 4),
            ([[120.0, 300.0]], [False, False, True, False]),  # between the second and third point
            ([[0.0, 60.0]], [False] * 4),  # before the first point: nothing to break from
            ([[360.0, 600.0]], [False] * 4),  # after the last point: the outage shade says it
        ],
    )
    def test_a_line_breaks_after_each_gap_between_two_points(
        self, gaps: list[list[float]], expected: list[bool]
    ) -> None:
        """Only a gap with points on both sides breaks the line, at the point after it."""
        x = np.array([60.0, 120.0, 300.0, 360.0])
        assert list(breaks_after_gaps(x, gaps)) == expected


class TestDrawing:
    def test_a_rollup_answer_draws_averages_with_a_band_and_none_as_a_hole(self) -> None:
        """Missing values become NaN (drawn as holes), rollups carry min and max, and the words say so."""
        request = range_request("web-1", choice_named("24 h"), NOW)
        at = [NOW - 180, NOW - 120, NOW - 60]
        drawing = RangeDrawing.of(answer(request, at, [[NOW - 60, NOW]], rollup=True))
        assert list(drawing.avg["cpu_percent"]) == [10.0, 20.0, 30.0]
        assert math.isnan(drawing.avg["mem_percent"][1])
        assert drawing.low is not None
        assert list(drawing.low["cpu_percent"]) == [10.0, 20.0, 30.0]
        text = describe_drawn(choice_named("24 h"), drawing)
        assert text == "24 h · 1 min averages of the 1m tier, min-max band · 3 points · 1 gap"

    def test_an_empty_answer_says_nothing_is_stored(self) -> None:
        """A node with nothing stored in the range reads "no samples stored", not an empty chart without words."""
        request = range_request("web-1", choice_named("7 d"), NOW)
        drawing = RangeDrawing.of(answer(request, [], [[NOW - 604800, NOW]], rollup=True))
        assert describe_drawn(choice_named("7 d"), drawing) == "7 d · no samples stored in this range"


class TestPendingRange:
    def test_only_the_answer_to_the_newest_request_is_taken(self) -> None:
        """An answer for another node, or for an earlier click, is not the one awaited."""
        pending = PendingRange()
        older = range_request("web-1", choice_named("24 h"), NOW - 5)
        newer = range_request("web-1", choice_named("24 h"), NOW)
        pending.start(newer, 0.0)
        assert not pending.answers(answer(older, [], [], rollup=True))
        other = range_request("web-2", choice_named("24 h"), NOW)
        assert not pending.answers(answer(other, [], [], rollup=True))
        assert pending.answers(answer(newer, [], [], rollup=True))
        assert not pending.overdue(14.9)
        assert pending.overdue(15.0)


class TestRangeLoader:
    def test_no_answer_in_time_says_so(self, qtbot: QtBot) -> None:
        """A ranged request the collector never answers ends in "not loaded: no answer ... in N s"."""
        picker = RangePicker()
        qtbot.addWidget(picker)
        clock = FakeClock(100.0)
        loader = RangeLoader(picker, wall_clock=lambda: NOW, clock=clock, timeout_s=0.05)
        loader.on_link_state(LinkState(Phase.CONNECTED, "ws://collector"))
        loader.pick(choice_named("24 h"))
        with qtbot.waitSignal(loader.request) as sent:
            loader.load("web-1")
        assert sent.args[0].to_at == NOW
        assert picker.status.text() == "loading 24 h of web-1 from the collector's store ..."
        clock.advance(0.06)
        qtbot.waitUntil(lambda: "not loaded" in picker.status.text(), timeout=2000)
        assert picker.status.text() == "24 h not loaded: no answer from the collector in 0.05 s"

    def test_a_connection_lost_while_loading_says_why_in_the_links_words(self, qtbot: QtBot) -> None:
        """The link's own words for the failure (e.g. connection refused) are in the range's status line."""
        picker = RangePicker()
        qtbot.addWidget(picker)
        loader = RangeLoader(picker, wall_clock=lambda: NOW, clock=FakeClock(0.0))
        loader.on_link_state(LinkState(Phase.CONNECTED, "ws://collector"))
        loader.pick(choice_named("30 d"))
        loader.load("web-1")
        loader.on_link_state(LinkState(Phase.RECONNECTING, "connection refused by 127.0.0.1:9"))
        assert picker.status.text() == (
            "30 d not loaded: not connected to the collector (connection refused by 127.0.0.1:9);"
            " it loads again once connected"
        )
        assert picker.button("30 d").isChecked()

    def test_a_collector_that_drops_every_range_request_is_not_asked_forever(self, qtbot: QtBot) -> None:
        """Two drops with a range in flight stop the automatic re-asking (no reconnect loop); a click asks again."""
        picker = RangePicker()
        qtbot.addWidget(picker)
        loader = RangeLoader(picker, wall_clock=lambda: NOW, clock=FakeClock(0.0))
        sent: list[HistoryRequest] = []
        loader.request.connect(sent.append)
        connected = LinkState(Phase.CONNECTED, "ws://collector")
        closed = LinkState(Phase.RECONNECTING, "the collector closed the connection: policy violation (schema)")
        loader.on_link_state(connected)
        loader.pick(choice_named("24 h"))
        loader.load("web-1")
        for _ in range(2):  # asked, dropped, asked again once connected, dropped again
            loader.on_link_state(closed)
            loader.on_link_state(connected)
        assert len(sent) == 2
        loader.load("web-1")  # the window's reload after the next snapshot
        assert len(sent) == 2
        assert "may not serve stored ranges" in picker.status.text()
        loader.pick(choice_named("24 h"))  # the operator clicks again
        loader.load("web-1")
        assert len(sent) == 3


class TestReadout:
    def test_the_readout_gives_each_series_in_its_unit_and_no_data_in_a_gap(self) -> None:
        """Percent, load and IEC rates each read as the table shows them; a series without a sample says so."""
        values = [("cpu_percent", 12.5, (3.0, 40.0)), ("load_1", 0.5, None), ("net_rx_bytes_per_s", 1536.0, None),
                  ("disk_write_bytes_per_s", None, None)]  # fmt: skip
        text = readout_text(NOW, values)
        assert text.endswith(" · CPU 12.5 % · Load 0.50 · ↓\u00a0rx 1.5 KiB/s · write no data")
        lines = band_text(NOW, values).splitlines()[1:]
        assert lines == ["CPU 12.5 %  (min 3.0 % - max 40.0 %)", "Load 0.50", "↓\u00a0rx 1.5 KiB/s", "write no data"]
