"""``nodewatch collector --alerts-config``: a bad rule file stops the start with one line naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli import main


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[[alerts.rule]]\nname = "cpu_high"\ncondition = "cpu_percent > 90"\nfor = 5\n',
            "key 'for': expected a duration",
        ),
        ("[alerts\n", "expected TOML"),
        ('[[alerts.route]]\nname = "r"\nurls = ["nosuch://host/secret-token"]\n', "expected a URL Apprise can send to"),
    ],
)
def test_a_bad_alerts_config_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, expected: str
) -> None:
    """A bad rule, bad TOML or a URL Apprise cannot use exits 2 with the reason; secrets stay out of it."""
    path = tmp_path / "alerts.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["--ephemeral", "--alerts-config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--alerts-config" in err
    assert expected in err
    assert "secret-token" not in err


def test_a_missing_alerts_config_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not there exits 2 naming it."""
    with pytest.raises(SystemExit) as exc:
        main(["--ephemeral", "--alerts-config", str(tmp_path / "nope.toml")])
    assert exc.value.code == 2
    assert "nope.toml" in capsys.readouterr().err
