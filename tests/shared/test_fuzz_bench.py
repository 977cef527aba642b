"""A short run of bench/fuzz.py, so the fuzzer itself cannot rot unnoticed between manual runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_PY = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"


@pytest.fixture
def fuzz(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/fuzz.py as a module (bench/ is scripts, not a package); dataclasses need it in sys.modules."""
    spec = importlib.util.spec_from_file_location("bench_fuzz", FUZZ_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


class TestFuzzBench:
    """bench/fuzz.py runs, reports, and exits 0 only when nothing but ProtocolError escaped."""

    def test_short_run_finds_only_protocol_errors(self, fuzz: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
        """800 seeded frames through every mutator print a table with zero other exceptions."""
        assert fuzz.main(["--frames", "800", "--seed", "7"]) == 0
        table = capsys.readouterr().out
        total_row = next(line for line in table.splitlines() if line.startswith("| **total**"))
        assert total_row.endswith("| **0** |")
        assert "FAILURE" not in table
        assert "`malformed_msgpack`" in table

    def test_every_mutator_is_exercised(self, fuzz: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
        """Each mutator named in the fuzzer shows up in a short run's table."""
        fuzz.main(["--frames", "800", "--seed", "7"])
        table = capsys.readouterr().out
        for name in fuzz.MUTATORS:
            assert f"| {name} |" in table

    def test_rejects_a_non_websocket_url(self, fuzz: ModuleType) -> None:
        """--url names the setting and what it accepts when given an http:// URL."""
        with pytest.raises(SystemExit) as info:
            fuzz.main(["--frames", "1", "--url", "http://127.0.0.1:1"])
        assert info.value.code == 2
