"""Tests of viewer.cli: arguments, environment defaults and the no-display message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from viewer.cli import EXIT_NO_DISPLAY, has_display, main, parse_config


class TestViewerCli:
    def test_defaults_come_from_the_environment(self) -> None:
        """NODEWATCH_COLLECTOR and NODEWATCH_TOKEN are the defaults; flags win."""
        env = {"NODEWATCH_COLLECTOR": "http://10.0.0.1:9000", "NODEWATCH_TOKEN": "t0k"}
        config, _level = parse_config([], env)
        assert (config.collector_url, config.token) == ("http://10.0.0.1:9000", "t0k")
        config, _level = parse_config(["--collector", "https://mon:443", "--token", "other"], env)
        assert (config.collector_url, config.token) == ("https://mon:443", "other")
        config, _level = parse_config([], {})
        assert (config.collector_url, config.token) == ("http://127.0.0.1:8765", None)

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--collector", "localhost:8765"], "--collector: expected an http:// or https:// URL"),
            (["--collector", "http://host:8765/x"], "--collector: expected only scheme://host:port"),
            (["--token", "  "], "--token: expected a non-empty token"),
        ],
    )
    def test_bad_arguments_name_the_setting(
        self, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        """A bad setting exits with status 2 and a message naming it and what it accepts."""
        with pytest.raises(SystemExit) as exited:
            parse_config(argv, {})
        assert exited.value.code == 2
        assert message in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("env", "platform", "expected"),
        [
            ({}, "linux", False),
            ({"DISPLAY": ":0"}, "linux", True),
            ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
            ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
            ({}, "darwin", True),
            ({}, "win32", True),
        ],
    )
    def test_has_display(self, env: dict[str, str], platform: str, expected: bool) -> None:
        """A Linux box needs X11, Wayland or an explicit Qt platform; macOS and Windows always have one."""
        assert has_display(env, platform) is expected

    def test_no_display_is_a_clear_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a display, main() explains what to do and returns non-zero without loading Qt widgets."""
        if not sys.platform.startswith("linux"):
            pytest.skip("the display check applies to X11/Wayland systems")
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
            monkeypatch.delenv(name, raising=False)
        assert main(["--collector", "http://127.0.0.1:1"]) == EXIT_NO_DISPLAY
        err = capsys.readouterr().err
        assert "no display" in err
        assert "QT_QPA_PLATFORM=offscreen" in err

    def test_help_does_not_load_qt_widgets(self) -> None:
        """`nodewatch viewer --help` prints usage without importing PyQt6.QtWidgets."""
        code = (
            "import sys\nfrom viewer.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('QtWidgets' in ' '.join(sys.modules))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert "--collector URL" in result.stdout
        assert result.stdout.strip().endswith("False")
