"""Rate-limited WARNING lines: every event is logged or counted into the next line, never demoted."""

from __future__ import annotations

import logging

import pytest

from collector.trust.ratelog import LogGate, warn_limited
from tests.support.clock import FakeClock


class TestLogGate:
    def test_one_line_per_key_per_interval_with_the_count_held_back(self) -> None:
        """A retry loop gets one line per interval, and that line says how many it stands for."""
        clock = FakeClock()
        gate = LogGate(interval_s=10.0)
        assert gate.admit("web-01", clock()) == 0
        for _ in range(5):
            clock.advance(1.0)
            assert gate.admit("web-01", clock()) is None
        clock.advance(5.0)
        assert gate.admit("web-01", clock()) == 5
        assert gate.admit("web-01", clock()) is None

    def test_keys_are_paced_separately(self) -> None:
        """A flood about one node id never hides the first line about another."""
        gate = LogGate(interval_s=10.0)
        assert gate.admit("a", 0.0) == 0
        assert gate.admit("b", 0.0) == 0
        assert gate.admit("a", 1.0) is None

    def test_the_key_table_is_bounded(self) -> None:
        """A peer inventing node ids cannot grow the gate past ``max_keys``."""
        gate = LogGate(interval_s=10.0, max_keys=3)
        for i in range(100):
            assert gate.admit(f"n{i}", float(i) / 100) == 0
        assert len(gate) == 3

    def test_expired_keys_go_first(self) -> None:
        """When full, keys whose interval has passed are dropped before a live one is."""
        gate = LogGate(interval_s=10.0, max_keys=2)
        gate.admit("old", 0.0)
        gate.admit("live", 9.0)
        assert gate.admit("live", 9.5) is None
        gate.admit("new", 12.0)  # drops "old" (expired), keeps "live" and its count
        assert gate.admit("live", 19.5) == 1

    def test_bad_settings_are_a_bug(self) -> None:
        """A negative interval or an empty table is misuse of our own API."""
        with pytest.raises(RuntimeError):
            LogGate(interval_s=-1.0)
        with pytest.raises(RuntimeError):
            LogGate(max_keys=0)


class TestWarnLimited:
    def test_lines_are_warnings_and_carry_the_suppressed_count(self, caplog: pytest.LogCaptureFixture) -> None:
        """The operator sees WARNING lines only, the second one counting the held-back attempts."""
        logger = logging.getLogger("test.trust.ratelog")
        gate = LogGate(interval_s=10.0)
        with caplog.at_level(logging.DEBUG, logger=logger.name):
            assert warn_limited(logger, gate, "n", 0.0, "node %r refused", "n")
            assert not warn_limited(logger, gate, "n", 1.0, "node %r refused", "n")
            assert not warn_limited(logger, gate, "n", 2.0, "node %r refused", "n")
            assert warn_limited(logger, gate, "n", 10.0, "node %r refused", "n")
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
            (logging.WARNING, "node 'n' refused"),
            (logging.WARNING, "node 'n' refused (2 similar lines suppressed)"),
        ]
