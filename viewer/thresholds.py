"""Pure: when a figure in the table deserves attention: warning and critical levels, and their marks.

A level is shown three ways, so that colour is never the only cue (a colour-blind operator,
a greyscale screenshot): a tinted cell, bold text and a mark before the figure ("▲" for a
warning, "▲▲" for critical), plus a tooltip naming the threshold.

Defaults: 80 % / 90 % for CPU and memory; disk follows the collector's built-in ``disk_full``
rule (warning at df's Use% >= 90, collector/alerts/rules.py) with critical at 95 %; the 1-minute
load per core warns at 1.0 (every core busy) and is critical at 2.0 (as much again waiting).
Only live figures are judged: a stale or offline node's old figures are dimmed instead.

Not here: Qt or colours (``viewer.model``), which column reads what (``viewer.cells``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class Level(IntEnum):
    """How much a figure needs looking at."""

    NORMAL = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def mark(self) -> str:
        """What stands before a figure at this level: a triangle per step above normal ("▲ ", "▲▲ ")."""
        return "▲" * int(self) + " " if self is not Level.NORMAL else ""


@dataclass(frozen=True, slots=True)
class Threshold:
    """A figure at or above ``warning`` is a warning, at or above ``critical`` critical."""

    warning: float
    critical: float
    unit: str = " %"
    digits: int = 1

    def level(self, value: float | None) -> Level:
        """The level of ``value``; an unmeasured value is normal."""
        if value is None:
            return Level.NORMAL
        if value >= self.critical:
            return Level.CRITICAL
        return Level.WARNING if value >= self.warning else Level.NORMAL

    def explain(self, value: float, what: str) -> str:
        """E.g. 'CPU 95.0 % is at or above the critical threshold (90 %)'."""
        level = self.level(value)
        if level is Level.NORMAL:
            return ""
        name, bound = ("critical", self.critical) if level is Level.CRITICAL else ("warning", self.warning)
        shown = f"{value:.{self.digits}f}{self.unit}"
        return f"{what} {shown} is at or above the {name} threshold ({bound:g}{self.unit})"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The table's thresholds, one per highlighted column."""

    cpu: Threshold = Threshold(80.0, 90.0)
    memory: Threshold = Threshold(80.0, 90.0)
    disk: Threshold = Threshold(90.0, 95.0)
    load_per_core: Threshold = Threshold(1.0, 2.0, unit=" per core", digits=2)


DEFAULT_THRESHOLDS: Final = Thresholds()
MARKS: Final[dict[Level, str]] = {level: level.mark for level in Level}


def load_per_core(load_1: float | None, cores: float | None) -> float | None:
    """The 1-minute load divided by the cores the node may use (None when either is unknown)."""
    if load_1 is None or not cores:
        return None
    return load_1 / cores
