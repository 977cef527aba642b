"""The per-hello INFO line is budgeted: a reconnect flood's hellos go to DEBUG past 100 in a row, and are counted.

Against a real collector on loopback, and the pure ``LineBudget``. Fails on the code before, where
every accepted hello wrote an INFO line: a flooder reconnecting ~200 times a second wrote 200 lines
a second (bench/faults.py, "One flooding connection").
"""

from __future__ import annotations

import logging

import pytest

from collector.trust.ratelog import LINE_BURST, LineBudget
from tests.support.collector import MakeClient, connect_agent
from tests.support.messages import hello


def _hello_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and "hello from node" in r.getMessage()]


async def test_a_hello_flood_writes_at_most_the_budget_at_info(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """120 hellos at once: 100 INFO lines, the other 20 at DEBUG, nothing lost for an operator who wants them."""
    caplog.set_level(logging.DEBUG, logger="nodewatch.collector")
    client = await make_client()
    for index in range(LINE_BURST + 20):
        ws, _ = await connect_agent(client, hello(node_id=f"node-{index:03d}"))
        await ws.close()
    assert len(_hello_lines(caplog, logging.INFO)) <= LINE_BURST + 1  # one more may have refilled meanwhile
    assert len(_hello_lines(caplog, logging.DEBUG)) >= 19
    assert len(_hello_lines(caplog, logging.INFO)) + len(_hello_lines(caplog, logging.DEBUG)) == LINE_BURST + 20


class TestLineBudget:
    """The pure budget: a burst, then a rate, and the next admitted line says how many went to DEBUG."""

    def test_past_the_burst_lines_are_held_and_counted_in_the_next_one(self) -> None:
        """Three lines in a row with a burst of two: the third is held; a second later the next says one was."""
        budget = LineBudget(rate_per_s=1.0, burst=2)
        assert [budget.admit(0.0), budget.admit(0.0), budget.admit(0.0)] == [0, 0, None]
        assert budget.admit(1.0) == 1
        assert budget.admit(1.0) is None

    def test_a_clock_going_backwards_refills_nothing(self) -> None:
        """A ``now`` before the last one adds no lines to the budget."""
        budget = LineBudget(rate_per_s=1.0, burst=1)
        assert budget.admit(10.0) == 0
        assert budget.admit(5.0) is None

    def test_misuse_is_a_runtime_error(self) -> None:
        """A zero rate or an empty burst is our own bug, not a peer's: RuntimeError."""
        with pytest.raises(RuntimeError, match="expected rate_per_s > 0"):
            LineBudget(rate_per_s=0.0)
        with pytest.raises(RuntimeError, match="burst >= 1"):
            LineBudget(burst=0)
