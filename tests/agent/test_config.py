"""Settings: URL mapping, precedence flag > env > file, and errors that name the setting."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.config import AgentConfig, build_parser, ingest_url, load_config, parse_args
from agent.errors import ConfigError


@functools.cache
def _state_dir() -> str:
    """One private state dir for these tests' node keys: never the machine's /var/lib/nodewatch-agent."""
    return tempfile.mkdtemp(prefix="nodewatch-test-agent-state-")


def load(argv: list[str], env: dict[str, str] | None = None) -> AgentConfig:
    merged = {"NODEWATCH_STATE_DIR": _state_dir(), **(env or {})}
    return load_config(build_parser().parse_args(argv), merged, default_node_id=lambda: "host-1")


class TestIngestUrl:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("ws://10.0.0.1:8765", "ws://10.0.0.1:8765/api/v1/ingest"),
            ("http://collector:8765/", "ws://collector:8765/api/v1/ingest"),
            ("https://collector.example", "wss://collector.example/api/v1/ingest"),
            ("wss://c:443/api/v1/ingest", "wss://c:443/api/v1/ingest"),
            ("127.0.0.1:8765", "ws://127.0.0.1:8765/api/v1/ingest"),
            ("http://proxy/nodewatch", "ws://proxy/nodewatch/api/v1/ingest"),
        ],
    )
    def test_maps_to_ingest_websocket(self, given: str, expected: str) -> None:
        """http(s) and bare HOST:PORT become the ws(s) ingest endpoint."""
        assert ingest_url(given) == expected

    @pytest.mark.parametrize("given", ["ftp://x:1", "ws://", "http://host:99999"])
    def test_rejects_other_urls(self, given: str) -> None:
        """Other schemes, no host or a bad port are refused with the setting's name."""
        with pytest.raises(ConfigError, match=r"^collector: expected"):
            ingest_url(given)


class TestPrecedence:
    def test_defaults(self) -> None:
        """Only the collector is required; node id defaults to the hostname and the backlog to 1 hour."""
        config = load(["--collector", "ws://c:1"])
        assert config.node_id == "host-1"
        assert config.interval_s == 1.0
        assert config.backlog_samples == 3600
        assert config.backlog_bytes is None
        assert config.token is None
        assert not config.top_processes

    def test_backlog_follows_interval(self) -> None:
        """The default backlog is one hour of samples at the chosen interval."""
        assert load(["--collector", "c:1", "--interval", "0.5"]).backlog_samples == 7200

    def test_flag_beats_env_beats_file(self, tmp_path: Path) -> None:
        """A flag wins over NODEWATCH_*, which wins over the TOML file."""
        path = tmp_path / "agent.toml"
        path.write_text(
            '[agent]\ncollector = "ws://file:1"\ninterval = 5\nnode_id = "from-file"\ntop_processes = true\n'
        )
        env = {"NODEWATCH_INTERVAL": "2", "NODEWATCH_NODE_ID": "from-env", "NODEWATCH_TOKEN": "s3cret"}
        config = load(["--config", str(path), "--node-id", "from-flag"], env)
        assert config.node_id == "from-flag"
        assert config.interval_s == 2.0
        assert config.ingest_url == "ws://file:1/api/v1/ingest"
        assert config.token == "s3cret"
        assert config.top_processes

    def test_config_file_from_env(self, tmp_path: Path) -> None:
        """NODEWATCH_CONFIG names the file when --config is not given; top-level keys work too."""
        path = tmp_path / "agent.toml"
        path.write_text('collector = "http://h:2"\nbacklog_bytes = 1000000\n')
        config = load([], {"NODEWATCH_CONFIG": str(path)})
        assert config.ingest_url == "ws://h:2/api/v1/ingest"
        assert config.backlog_bytes == 1_000_000


class TestErrors:
    @pytest.mark.parametrize(
        ("argv", "env", "message"),
        [
            (
                ["--collector", "c:1", "--interval", "0"],
                {},
                "interval: expected seconds between 0.05 and 3600, got '0'",
            ),
            (["--collector", "c:1", "--interval", "fast"], {}, "interval: expected seconds"),
            (["--collector", "c:1"], {"NODEWATCH_INTERVAL": "nan"}, "interval: expected seconds"),
            (["--collector", "c:1", "--node-id", "-bad id"], {}, "node_id: expected 1-128 characters"),
            (["--collector", "c:1", "--backlog-samples", "0"], {}, "backlog_samples: expected a whole number >= 1"),
            (["--collector", "c:1"], {"NODEWATCH_TOP_PROCESSES": "maybe"}, "top_processes: expected true/false"),
            (["--collector", "gopher://x"], {}, "collector: expected ws://HOST:PORT"),
            ([], {}, "collector: expected --collector URL, NODEWATCH_COLLECTOR"),
            (["--collector", "c:1"], {"NODEWATCH_BACKLOG_BYTES": "5", "NODEWATCH_BACKLOG_SAMPLES": "5"}, "backlog: "),
        ],
    )
    def test_bad_value_names_setting(self, argv: list[str], env: dict[str, str], message: str) -> None:
        """Each bad value is rejected with the setting's name and what it accepts."""
        with pytest.raises(ConfigError, match=re.escape(message)):
            load(argv, env)

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A typo in the TOML file is named, with the valid keys."""
        path = tmp_path / "agent.toml"
        path.write_text('collector = "c:1"\nintervall = 2\n')
        with pytest.raises(ConfigError, match=r"unknown setting.*intervall"):
            load(["--config", str(path)])

    def test_cli_error_exits_2_with_message(self, capsys: pytest.CaptureFixture[str]) -> None:
        """parse_args reports a bad value through argparse: exit status 2 and the message on stderr."""
        with pytest.raises(SystemExit) as info:
            parse_args(["--collector", "c:1", "--interval", "-1"], {})
        assert info.value.code == 2
        assert "interval: expected seconds between 0.05 and 3600" in capsys.readouterr().err


class TestLeanImports:
    def test_help_loads_no_qt_prometheus_or_collector(self) -> None:
        """`nodewatch agent --help` imports neither PyQt6, prometheus_client nor any collector module."""
        code = (
            "import sys\n"
            "from nodewatch.cli import main\n"
            "try:\n    main(['agent', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'PyQt6', 'prometheus_client', 'collector',"
            " 'viewer', 'pyqtgraph'})\n"
            "print('LOADED', bad)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert "--collector URL" in result.stdout
        assert "LOADED []" in result.stdout

    def test_running_agent_loads_no_pydantic(self) -> None:
        """The whole agent (runner, pusher, sampler) imports without pydantic: ~10 MB of RSS stay free."""
        code = "import sys, agent.runner, agent.cli\nprint('PYDANTIC', 'pydantic' in sys.modules)\n"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert "PYDANTIC False" in result.stdout


class TestTokenFile:
    def write(self, tmp_path: Path, content: bytes, mode: int = 0o600) -> str:
        path = tmp_path / "agent.token"
        path.write_bytes(content)
        path.chmod(mode)
        return str(path)

    @pytest.mark.parametrize(
        ("content", "token"), [(b"s3cret\n", "s3cret"), (b"s3cret", "s3cret"), (b"tok\r\n", "tok")]
    )
    def test_token_comes_from_the_file_without_its_newline(self, tmp_path: Path, content: bytes, token: str) -> None:
        """--token-file reads the token and strips one trailing newline, as `echo tok > file` writes it."""
        path = self.write(tmp_path, content)
        assert load(["--collector", "c:1", "--token-file", path]).token == token

    def test_file_from_env_and_toml(self, tmp_path: Path) -> None:
        """NODEWATCH_TOKEN_FILE and token_file in the TOML file work like the flag."""
        path = self.write(tmp_path, b"from-file\n")
        assert load(["--collector", "c:1"], {"NODEWATCH_TOKEN_FILE": path}).token == "from-file"
        toml = tmp_path / "agent.toml"
        toml.write_text(f'collector = "c:1"\ntoken_file = "{path}"\n')
        assert load(["--config", str(toml)]).token == "from-file"

    @pytest.mark.parametrize("mode", [0o644, 0o604, 0o666])
    def test_a_world_readable_file_is_refused(self, tmp_path: Path, mode: int) -> None:
        """A token file every local user can read is an error naming the setting, the file and its mode."""
        path = self.write(tmp_path, b"s3cret\n", mode)
        with pytest.raises(ConfigError, match=rf"^token_file: expected a file other users cannot read .*{mode:04o}$"):
            load(["--collector", "c:1", "--token-file", path])

    def test_a_group_readable_file_is_accepted(self, tmp_path: Path) -> None:
        """0640 (root:nodewatch) is a common way to share a secret with a service's group."""
        path = self.write(tmp_path, b"s3cret\n", 0o640)
        assert load(["--collector", "c:1", "--token-file", path]).token == "s3cret"

    @pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"tok\n\n", b"\xff\xfe\n", b"x" * 5000])
    def test_a_malformed_file_is_refused_without_echoing_it(self, tmp_path: Path, content: bytes) -> None:
        """An empty, multi-line, spaced, non-UTF-8 or huge file is refused, and the message never shows its bytes."""
        path = self.write(tmp_path, content)
        with pytest.raises(ConfigError, match=r"^token_file: expected") as info:
            load(["--collector", "c:1", "--token-file", path])
        assert "words" not in str(info.value)
        assert "xxxx" not in str(info.value)

    def test_a_missing_file_names_the_setting(self, tmp_path: Path) -> None:
        """A path that does not exist is an error naming token_file and the path."""
        with pytest.raises(ConfigError, match=r"^token_file: expected a readable file, got '.*nope'"):
            load(["--collector", "c:1", "--token-file", str(tmp_path / "nope")])

    def test_token_and_token_file_together_are_refused(self, tmp_path: Path) -> None:
        """Two sources for one secret are ambiguous: an error, whichever way each was given."""
        path = self.write(tmp_path, b"a\n")
        with pytest.raises(ConfigError, match=r"^token_file: expected a token or a token file, not both"):
            load(["--collector", "c:1", "--token-file", path], {"NODEWATCH_TOKEN": "b"})
