"""Import boundaries: agent, collector and viewer meet only in shared, and shared does no I/O.

Checked two ways: statically, by parsing every module's imports (so a boundary broken in a
rarely run branch still shows), and at run time, by the modules a real ``--help`` loads.
The same parser keeps tests and benches apart (house style 26): tests share ``tests/support``
and never import a conftest or another test module, benches never import tests, and no
program imports either.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "collector", "viewer", "shared")
PROGRAMS = (*PACKAGES, "nodewatch")  # everything the wheel ships

# package -> top-level modules it must never import, and why
FORBIDDEN: dict[str, dict[str, str]] = {
    "agent": {
        "collector": "the programs meet only in shared",
        "viewer": "the programs meet only in shared",
        "PyQt6": "an agent runs on headless servers",
        "pyqtgraph": "an agent runs on headless servers",
        "prometheus_client": "the agent stays lean; metrics are the collector's job",
    },
    "collector": {
        "agent": "the programs meet only in shared",
        "viewer": "the programs meet only in shared",
        "PyQt6": "the collector runs headless",
        "pyqtgraph": "the collector runs headless",
    },
    "viewer": {
        "agent": "the programs meet only in shared",
        "collector": "the programs meet only in shared",
    },
    "shared": {
        "agent": "shared is the bottom layer",
        "collector": "shared is the bottom layer",
        "viewer": "shared is the bottom layer",
        "nodewatch": "shared is the bottom layer",
        "aiohttp": "shared is sans-IO",
        "asyncio": "shared is sans-IO",
        "psutil": "shared is sans-IO",
        "PyQt6": "shared is sans-IO",
        "pyqtgraph": "shared is sans-IO",
        "prometheus_client": "shared is sans-IO",
    },
}
# What the module list of a process that only ran ``nodewatch SUB --help`` must not contain.
HELP_MUST_NOT_LOAD: dict[str, set[str]] = {
    "agent": {"PyQt6", "pyqtgraph", "collector", "viewer", "prometheus_client"},
    "collector": {"PyQt6", "pyqtgraph", "viewer", "agent"},
}
# Print every loaded module after ``nodewatch SUB --help``; argparse exits through SystemExit.
MODULES_AFTER_HELP = """
import json, sys
from nodewatch.cli import main
try:
    status = main([sys.argv[1], "--help"])
except SystemExit as exc:
    status = exc.code
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""


def _source_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package_parts = package_parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package_parts[: len(package_parts) - node.level + 1]
                if node.module:
                    found.add(".".join([*base, node.module]))
                else:  # "from .. import x": x may be a module
                    found.update(".".join([*base, alias.name]) for alias in node.names)
            elif node.module:
                found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    problems = []
    for path in _source_files(package):
        for module in sorted(_imported_modules(path)):
            top = module.split(".")[0]
            if top in forbidden:
                problems.append(f"{path.relative_to(ROOT)} imports {module}: {forbidden[top]}")
    return problems


def _tree_files(folder: str) -> list[Path]:
    return sorted(path for path in (ROOT / folder).rglob("*.py") if "artifacts" not in path.parts)


def _support_violations() -> list[str]:
    """Every import that breaks the test-support rules, as ``file imports module: why``."""
    problems = []
    for path in _tree_files("tests"):
        for module in sorted(_imported_modules(path)):
            parts = module.split(".")
            if parts[0] != "tests":
                continue
            if parts[-1] == "conftest":
                problems.append(f"{path.relative_to(ROOT)} imports {module}: move what it needs to tests/support")
            elif parts[-1].startswith("test_"):
                problems.append(f"{path.relative_to(ROOT)} imports {module}: a test module is not a library")
            elif path.is_relative_to(ROOT / "tests" / "support") and parts[:2] != ["tests", "support"]:
                problems.append(f"{path.relative_to(ROOT)} imports {module}: tests/support is the bottom layer")
    for path in _tree_files("bench"):
        problems.extend(
            f"{path.relative_to(ROOT)} imports {module}: benches never import tests"
            for module in sorted(_imported_modules(path))
            if module.split(".")[0] == "tests"
        )
    return problems


def _modules_after_help(subcommand: str, tmp_path: Path) -> set[str]:
    out = tmp_path / f"{subcommand}-modules.json"
    run = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER_HELP, subcommand, str(out)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"nodewatch {subcommand} --help crashed:\n{run.stderr[-2000:]}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["status"] in (0, None), f"nodewatch {subcommand} --help exited {result['status']}"
    return set(result["modules"])


class TestStaticBoundaries:
    """No module of one program imports another program, and shared imports no I/O library."""

    @pytest.mark.parametrize("package", PACKAGES)
    def test_package_imports_nothing_forbidden(self, package: str) -> None:
        """Every .py file under the package stays within its import boundary."""
        assert _source_files(package), f"expected Python files under {package}/"
        assert _violations(package) == []

    def test_the_checker_sees_every_kind_of_import(self, tmp_path: Path) -> None:
        """Plain, from, relative, nested and importlib imports are all found, so the check can fail."""
        tree = ast.parse(
            "import collector.app\n"
            "from viewer import window\n"
            "from .. import collector\n"
            "def later():\n"
            "    import PyQt6.QtCore\n"
            "    importlib.import_module('prometheus_client')\n"
        )
        fake = tmp_path / "agent" / "sub" / "mod.py"
        fake.parent.mkdir(parents=True)
        fake.write_text(ast.unparse(tree), encoding="utf-8")
        found = _imported_modules(fake, root=tmp_path)
        assert found == {"collector.app", "viewer", "agent.collector", "PyQt6.QtCore", "prometheus_client"}


class TestTestAndBenchBoundaries:
    """Tests share one support package, benches stand on their own, and no program imports either."""

    def test_tests_and_benches_import_only_support(self) -> None:
        """No test imports a conftest or a test module, tests/support imports no other test code, bench no tests."""
        assert _support_violations() == []

    @pytest.mark.parametrize("package", PROGRAMS)
    def test_programs_import_neither_tests_nor_bench(self, package: str) -> None:
        """Nothing the wheel ships imports ``tests`` or ``bench``, which it does not ship."""
        imported = {module for path in _source_files(package) for module in _imported_modules(path)}
        assert sorted(m for m in imported if m.split(".")[0] in {"tests", "bench"}) == []


class TestRuntimeBoundaries:
    """What ``nodewatch SUB --help`` actually loads, as a user starting it on a headless server would."""

    def test_agent_help_exits_cleanly(self) -> None:
        """``python -m nodewatch agent --help`` prints usage and exits 0."""
        result = subprocess.run(
            [sys.executable, "-m", "nodewatch", "agent", "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()
        assert "--collector" in result.stdout

    @pytest.mark.parametrize("subcommand", sorted(HELP_MUST_NOT_LOAD))
    def test_help_loads_no_other_program_and_no_qt(self, subcommand: str, tmp_path: Path) -> None:
        """``nodewatch agent --help`` loads neither PyQt6 nor the collector; ``collector --help`` no PyQt6."""
        modules = _modules_after_help(subcommand, tmp_path)
        assert f"{subcommand}.cli" in modules  # the help really came from that program
        loaded = sorted(name for name in modules if name.split(".")[0] in HELP_MUST_NOT_LOAD[subcommand])
        assert loaded == []
