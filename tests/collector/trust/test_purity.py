"""The trust parts stay pure: no event loop, web framework, database or socket in any of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PURE_FILES = [*sorted((ROOT / "collector" / "trust").glob("*.py")), ROOT / "agent" / "identity.py"]
FORBIDDEN = {"asyncio", "aiohttp", "sqlite3", "socket", "time", "collector.app", "collector.cache"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_framework_or_clock_is_imported(path: Path) -> None:
    """Each trust module takes ``now`` from its caller and does no I/O of its own, so a fake clock tests it."""
    imported = _imports(path)
    bad = {name for name in imported if name in FORBIDDEN or name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}"
