"""Node labels on the agent: --label, NODEWATCH_LABELS and TOML ``labels``, refusals, and the hello carrying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, build_parser, load_config, parse_args
from agent.errors import ConfigError
from agent.runner import Agent
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig
from shared.codec import decode, encode
from shared.messages import Hello

from .fakes import FakePsutil
from .ingest_server import running, wait_until


def load(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> AgentConfig:
    """The config for ``argv`` and ``env``, its node key kept in ``tmp_path``."""
    environ = {"NODEWATCH_STATE_DIR": str(tmp_path / "state"), **(env or {})}
    return load_config(build_parser().parse_args(["--collector", "c:1", *argv]), environ, default_node_id=lambda: "h")


def toml(tmp_path: Path, text: str) -> list[str]:
    """``--config`` pointing at a TOML file holding ``text``."""
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return ["--config", str(path)]


class TestLabelSettings:
    @pytest.mark.parametrize(
        ("argv", "env", "file", "labels"),
        [
            ([], {}, None, ()),
            (["--label", "role=web", "--label", "dc=fra"], {}, None, (("role", "web"), ("dc", "fra"))),
            ([], {"NODEWATCH_LABELS": "role=web,dc=fra"}, None, (("role", "web"), ("dc", "fra"))),
            ([], {"NODEWATCH_LABELS": " role=web , "}, None, (("role", "web"),)),
            ([], {}, '[agent]\ncollector = "c:1"\nlabels = {role = "web", _x = "a b=c"}\n',
             (("role", "web"), ("_x", "a b=c"))),
            ([], {}, 'labels = {role = "web"}\n', (("role", "web"),)),
            (["--label", "url=http://x/?a=b"], {}, None, (("url", "http://x/?a=b"),)),  # the first = splits
            # One setting, not merged: the first source with labels gives all of them.
            (["--label", "role=db"], {"NODEWATCH_LABELS": "dc=fra"}, 'labels = {rack = "3"}\n', (("role", "db"),)),
            ([], {"NODEWATCH_LABELS": "dc=fra"}, 'labels = {rack = "3"}\n', (("dc", "fra"),)),
            ([], {"NODEWATCH_LABELS": ""}, 'labels = {rack = "3"}\n', (("rack", "3"),)),
            ([], {}, "labels = {}\n", ()),
            (["--label", "k=" + "v" * 256, "--label", "K" + "k" * 62 + "=v"], {}, None,
             (("k", "v" * 256), ("K" + "k" * 62, "v"))),
        ],
    )  # fmt: skip
    def test_accepted(
        self,
        tmp_path: Path,
        argv: list[str],
        env: dict[str, str],
        file: str | None,
        labels: tuple[tuple[str, str], ...],
    ) -> None:
        """Labels given by flag, environment or file reach the config in the order given."""
        extra = toml(tmp_path, file) if file is not None else []
        assert load([*argv, *extra], tmp_path, env).labels == labels

    @pytest.mark.parametrize(
        ("argv", "env", "file", "says"),
        [
            (["--label", "role"], {}, None, "--label: expected KEY=VALUE, KEY 1-63 letters, digits or _ not"
             " starting with a digit, VALUE 1-256 characters, got 'role'"),
            (["--label", "role="], {}, None, "--label: expected KEY=VALUE"),
            (["--label", "=web"], {}, None, "--label: expected KEY=VALUE"),
            (["--label", "1st=web"], {}, None, "got '1st=web'"),
            (["--label", "my-role=web"], {}, None, "got 'my-role=web'"),
            (["--label", "k" * 64 + "=v"], {}, None, "--label: expected KEY=VALUE"),
            (["--label", "k=" + "v" * 257], {}, None, "--label: expected KEY=VALUE"),
            (["--label", "rôle=web"], {}, None, "got 'rôle=web'"),
            (["--label", "role=web", "--label", "role=db"], {}, None,
             "--label: expected each label key once, got role more than once"),
            ([f"--label=k{i}=v" for i in range(33)], {}, None, "--label: expected at most 32 labels, got 33"),
            ([], {"NODEWATCH_LABELS": "role=web,dc"}, None, "NODEWATCH_LABELS: expected KEY=VALUE"),
            ([], {"NODEWATCH_LABELS": "role:web"}, None, "NODEWATCH_LABELS: expected KEY=VALUE"),
            ([], {}, 'labels = "role=web"\n', "labels: expected a TOML table of strings in the config file"),
            ([], {}, "labels = {rack = 3}\n", "labels: expected a TOML table of strings"),
            ([], {}, 'labels = {"my role" = "web"}\n', "labels: expected KEY=VALUE"),
            ([], {}, 'labels = {"a=b" = "c"}\n', "got 'a=b=c'"),
            ([], {}, 'labels = {role = ""}\n', "labels: expected KEY=VALUE"),
        ],
    )  # fmt: skip
    def test_refused(self, tmp_path: Path, argv: list[str], env: dict[str, str], file: str | None, says: str) -> None:
        """A bad label is refused at start with the setting's name and what it accepts."""
        extra = toml(tmp_path, file) if file is not None else []
        with pytest.raises(ConfigError) as info:
            load([*argv, *extra], tmp_path, env)
        assert says in str(info.value)

    def test_cli_exits_2_naming_the_flag(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`nodewatch agent --label role` exits 2 with a message naming --label, like any bad setting."""
        with pytest.raises(SystemExit) as info:
            parse_args(["--collector", "c:1", "--label", "role"], {"NODEWATCH_STATE_DIR": str(tmp_path)})
        assert info.value.code == 2
        assert "--label: expected KEY=VALUE" in capsys.readouterr().err

    def test_help_lists_the_flag_and_the_environment_variable(self) -> None:
        """--help shows --label and names NODEWATCH_LABELS among the environment variables."""
        text = build_parser().format_help()
        assert "--label KEY=VALUE" in text
        assert "NODEWATCH_LABELS" in text


class TestHelloLabels:
    def test_the_hello_carries_the_labels_as_shared_encodes_them(self, tmp_path: Path) -> None:
        """The agent's hello has facts.labels, decodes as a Hello and re-encodes to the very same bytes."""
        config = AgentConfig(
            ingest_url="ws://127.0.0.1:1/api/v1/ingest", node_id="n1", labels=(("role", "web"), ("dc", "fra"))
        )
        agent = Agent(config, ps=FakePsutil(), cgroup_root=tmp_path, wall_clock=lambda: 1_700_000_000.5)
        frame = agent.hello_frame(0)
        hello = decode(frame)
        assert isinstance(hello, Hello)
        assert hello.facts.labels == {"role": "web", "dc": "fra"}
        assert encode(hello) == frame

    def test_no_labels_no_field(self, tmp_path: Path) -> None:
        """Without --label the hello has no labels field at all, so older collectors still accept it."""
        config = AgentConfig(ingest_url="ws://127.0.0.1:1/api/v1/ingest", node_id="n1")
        agent = Agent(config, ps=FakePsutil(), cgroup_root=tmp_path)
        hello = decode(agent.hello_frame(0))
        assert isinstance(hello, Hello)
        assert hello.facts.labels is None
        assert b"labels" not in agent.hello_frame(0)


class TestEndToEnd:
    async def test_a_real_collector_shows_the_labels_given_on_the_command_line(
        self, tmp_path: Path, aiohttp_client: Any
    ) -> None:
        """`nodewatch agent --label role=web --label dc=fra` shows up in the real collector's /api/v1/nodes."""
        client = await aiohttp_client(create_app(CollectorConfig(host="127.0.0.1", port=0)))
        url = f"ws://127.0.0.1:{client.server.port}"
        env = {"NODEWATCH_STATE_DIR": str(tmp_path / "state")}
        config = parse_args(["--collector", url, "--node-id", "web-1", "--label", "role=web", "--label", "dc=fra"], env)
        agent = Agent(config, ps=FakePsutil(), cgroup_root=tmp_path, random_source=lambda: 0.2)
        async with running(agent):
            await wait_until(lambda: client.server.app[RUNTIME_KEY].cache.get("web-1") is not None)
            body = await (await client.get("/api/v1/nodes/web-1")).json()
        assert body["facts"]["labels"] == {"role": "web", "dc": "fra"}
