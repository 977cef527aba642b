"""Issue 11's size rule: no module in collector/ or agent/ is over about 350 lines.

Fails on the code before the split: collector/admission.py had 368 lines and collector/cli.py 355.
The module in ``OVER_WHILE_REWORKED`` was over the bound when this test came, and its owner was
reworking it at the time; it is to leave the list once it is back under the bound.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 350
OVER_WHILE_REWORKED = frozenset({"collector/store/sqlite_engine.py"})


def long_modules() -> dict[str, int]:
    """Every module of agent/ and collector/ over ``MAX_LINES``, with its line count."""
    counts = {}
    for package in ("agent", "collector"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                counts[path.relative_to(ROOT).as_posix()] = lines
    return counts


class TestModuleSize:
    def test_no_module_is_over_the_bound(self) -> None:
        """A module past 350 lines is split by job (issue 11), unless it is one being reworked now."""
        over = {name: lines for name, lines in long_modules().items() if name not in OVER_WHILE_REWORKED}
        assert not over, f"expected every module at most {MAX_LINES} lines, got {over}"
