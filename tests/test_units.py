"""The shipped systemd units: systemd itself accepts them, and they stay hardened.

``systemd-analyze verify`` checks that the binary exists, so each unit is copied with
``ExecStart`` pointed at this checkout's ``nodewatch``; everything else is verified as shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
SHIPPED_BINARY = "/opt/nodewatch/bin/nodewatch"
# systemd-analyze security scores 0 (locked down) to 10 (exposed); "OK" ends at 4.9.
MAX_EXPOSURE = 3.0
ANALYZE = shutil.which("systemd-analyze")

needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (Debian package systemd)")


def _local_copy(unit: Path, tmp_path: Path) -> Path:
    nodewatch = Path(sys.executable).with_name("nodewatch")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(SHIPPED_BINARY, str(nodewatch)))
    return copy


def _directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


def test_both_units_ship() -> None:
    """An operator finds one unit for the agent and one for the collector."""
    assert [u.name for u in UNITS] == ["nodewatch-agent.service", "nodewatch-collector.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_hardened(unit: Path) -> None:
    """Each unit runs as an unprivileged user on a read-only system, with its state and config dirs."""
    found = _directives(unit)
    assert found["DynamicUser"] == ["yes"]
    assert found["NoNewPrivileges"] == ["yes"]
    assert found["ProtectSystem"] == ["strict"]
    assert found["CapabilityBoundingSet"] == [""]
    assert "StateDirectory" in found
    assert found["ConfigurationDirectory"] == ["nodewatch"]
    assert all(cred.split(":", 1)[1].startswith("/etc/nodewatch/") for cred in found["LoadCredential"])


@needs_systemd
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_accepts_unit(unit: Path, tmp_path: Path) -> None:
    """systemd-analyze verify finds no error and no unknown or misspelt directive."""
    assert ANALYZE is not None
    proc = subprocess.run(
        [ANALYZE, "verify", str(_local_copy(unit, tmp_path))], capture_output=True, text=True, check=False
    )
    complaints = [line for line in proc.stderr.splitlines() if unit.name in line]
    assert proc.returncode == 0, proc.stderr
    assert complaints == []


@needs_systemd
def test_verify_catches_a_misspelt_directive(tmp_path: Path) -> None:
    """The verify check can fail: a misspelt hardening directive is reported."""
    assert ANALYZE is not None
    bad = _local_copy(UNITS[0], tmp_path)
    bad.write_text(bad.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    proc = subprocess.run([ANALYZE, "verify", str(bad)], capture_output=True, text=True, check=False)
    assert "Unknown key" in proc.stderr


@needs_systemd
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exposure_score_is_low(unit: Path, tmp_path: Path) -> None:
    """systemd's own security review rates each unit well inside "OK"."""
    assert ANALYZE is not None
    proc = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(_local_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze has no offline security review: {proc.stderr[:200]!r}")
    assert float(match[1]) <= MAX_EXPOSURE
