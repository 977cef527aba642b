"""The agent's settings: parsing, validation and precedence (flag > environment > TOML file).

Pure apart from reading the TOML file and the token file it is pointed at:
the environment comes in as a mapping, so ``main`` is the only place that
reads ``os.environ``. Not here: logging setup or running anything.

A token file (``--token-file``, for systemd's ``LoadCredential``) holds one
line; one trailing newline is stripped. A file that every local user can read
is refused, not merely warned about, as ssh refuses an unprotected key: the
token would already have leaked, and a warning in a journal goes unread.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.errors import ConfigError
from agent.identity import NodeKeyError, load_or_create_node_key
from agent.labels import LABELS_ENV, labels_from
from shared.limits import MAX_LABELS

INGEST_PATH = "/api/v1/ingest"
DEFAULT_INTERVAL_S = 1.0
BACKLOG_SECONDS = 3600  # one hour of samples rides out a collector upgrade or a long network cut
DEFAULT_WS_HEARTBEAT_S = 10.0  # a dead collector is noticed within ~15 s (agent.session waits heartbeat/2 for the pong)
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
MAX_TOKEN_FILE_BYTES = 4096  # a token is a line; anything longer is the wrong file
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent needs to run; built by ``load_config``, usable directly in tests."""

    ingest_url: str
    node_id: str
    token: str | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    backlog_samples: int = BACKLOG_SECONDS
    backlog_bytes: int | None = None
    top_processes: bool = False
    ws_heartbeat_s: float = DEFAULT_WS_HEARTBEAT_S
    connect_timeout_s: float = 10.0
    log_level: str = "INFO"
    # The node key from the state dir (agent.identity; docs/security.md, 3.1); None: the hello carries no
    # node credential. Never shown: a logged config must not print it.
    node_key: bytes | None = field(default=None, repr=False)
    state_dir: Path | None = None
    # (key, value) in the order given, keys unique; sent as the hello's facts.labels (docs/protocol.md 5.1).
    labels: tuple[tuple[str, str], ...] = ()


def ingest_url(value: str) -> str:
    """Turn ws://, wss://, http://, https:// or bare HOST:PORT into the ingest websocket URL."""
    text = value.strip()
    if "://" not in text:
        text = "ws://" + text
    parts = urlsplit(text)
    scheme = {"ws": "ws", "http": "ws", "wss": "wss", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ConfigError(f"collector: expected ws://HOST:PORT or http://HOST:PORT, got {value!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"collector: expected a port number 1-65535, got {value!r}") from exc
    path = parts.path.rstrip("/")
    if not path.endswith(INGEST_PATH):
        path += INGEST_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _positive_float(name: str, low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise ConfigError(f"{name}: expected seconds between {low:g} and {high:g}, got {raw!r}")
        return value

    return parse


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{name}: expected a whole number >= 1, got {raw!r}")
        return value

    return parse


def _node_id(raw: str) -> str:
    if len(raw) > 128 or not _NODE_ID.match(raw):
        raise ConfigError(
            f"node_id: expected 1-128 characters of letters, digits and ._:@- starting with a letter or digit,"
            f" got {raw!r}"
        )
    return raw


def _bool(name: str) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name}: expected true/false (1/0, yes/no), got {raw!r}")

    return parse


def _token(raw: str) -> str:
    if not raw or any(ch.isspace() for ch in raw):
        raise ConfigError("token: expected a non-empty token without spaces")
    return raw


def read_token_file(path: str) -> str:
    """The token in ``path``: one line, one trailing newline stripped, not readable by others."""
    try:
        with Path(path).open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"token_file: expected a readable file, got {path!r} ({exc.strerror})") from exc
    if mode & stat.S_IROTH:
        raise ConfigError(
            f"token_file: expected a file other users cannot read (chmod 600), got {path!r} with mode"
            f" {stat.S_IMODE(mode):04o}"
        )
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"token_file: expected at most {MAX_TOKEN_FILE_BYTES} bytes, got more in {path!r}")
    text = data.decode("utf-8", errors="replace")
    text = text.removesuffix("\n").removesuffix("\r")
    if not text or any(ch.isspace() for ch in text) or "\ufffd" in text:
        # Never echo the file's content: it is a secret, even when malformed.
        raise ConfigError(f"token_file: expected one line holding a token without spaces, got {path!r}")
    return text


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"log_level: expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


# setting -> (parser from text, environment variable)
SETTINGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "collector": (ingest_url, "NODEWATCH_COLLECTOR"),
    "token": (_token, "NODEWATCH_TOKEN"),
    "token_file": (str, "NODEWATCH_TOKEN_FILE"),
    "interval": (_positive_float("interval", 0.05, 3600.0), "NODEWATCH_INTERVAL"),
    "node_id": (_node_id, "NODEWATCH_NODE_ID"),
    "backlog_samples": (_positive_int("backlog_samples"), "NODEWATCH_BACKLOG_SAMPLES"),
    "backlog_bytes": (_positive_int("backlog_bytes"), "NODEWATCH_BACKLOG_BYTES"),
    "top_processes": (_bool("top_processes"), "NODEWATCH_TOP_PROCESSES"),
    "ws_heartbeat": (_positive_float("ws_heartbeat", 0.1, 3600.0), "NODEWATCH_WS_HEARTBEAT"),
    "log_level": (_log_level, "NODEWATCH_LOG_LEVEL"),
    "state_dir": (str, "NODEWATCH_STATE_DIR"),
}
CONFIG_ENV = "NODEWATCH_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    """The ``nodewatch agent`` command line; every default is None so precedence can be applied after."""
    parser = argparse.ArgumentParser(
        prog="nodewatch agent",
        description="Sample this machine and push heartbeats to a nodewatch collector over one websocket.",
        epilog="Each option can also come from the environment ("
        + ", ".join([*(env for _, env in SETTINGS.values()), LABELS_ENV])
        + ") or a TOML file (--config or NODEWATCH_CONFIG) with the same names in snake_case, optionally"
        " under [agent]. A flag beats the environment, which beats the file.",
    )
    # The options that take one value; --label, the backlog pair and --top-processes follow.
    options = {
        "--collector": ("URL", "collector address: ws://HOST:8765, http://HOST:8765 or HOST:PORT"),
        "--token": ("T", "agent token (prefer --token-file or NODEWATCH_TOKEN: flags show up in ps)"),
        "--token-file": (
            "PATH",
            "read the agent token from this file: one line, not readable by other users (else refused)",
        ),
        "--interval": ("SECONDS", f"sampling interval, 0.05-3600 (default {DEFAULT_INTERVAL_S:g})"),
        "--node-id": ("ID", "node id shown by the collector (default: the hostname)"),
        "--config": ("FILE.toml", "TOML file with the same settings"),
        "--ws-heartbeat": ("SECONDS", f"websocket ping interval (default {DEFAULT_WS_HEARTBEAT_S:g})"),
        "--log-level": ("LEVEL", "DEBUG, INFO (default), WARNING or ERROR"),
        "--state-dir": (
            "DIR",
            "keep the node key here (default: $STATE_DIRECTORY, else /var/lib/nodewatch-agent as root, "
            "~/.local/state/nodewatch-agent as a user)",
        ),
    }
    for flag, (metavar, text) in options.items():
        parser.add_argument(flag, metavar=metavar, help=text)
    parser.add_argument(
        "--label",
        metavar="KEY=VALUE",
        action="append",
        help=f"a node label, repeatable (at most {MAX_LABELS}); also {LABELS_ENV}=k=v,k2=v2 or a TOML table labels",
    )
    backlog = parser.add_mutually_exclusive_group()
    backlog.add_argument(
        "--backlog-samples",
        metavar="N",
        help="unacked samples kept while disconnected (default: one hour's worth at the interval)",
    )
    backlog.add_argument("--backlog-bytes", metavar="N", help="bound the backlog by encoded bytes instead")
    parser.add_argument(
        "--top-processes", action="store_const", const="true", help="also send the top 5 processes by CPU and RSS"
    )
    return parser


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib  # noqa: PLC0415 - only with a config file: ~0.5 MB RSS of a 20 MB budget otherwise

    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"config: expected a readable TOML file, got {path!r} ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: expected valid TOML in {path!r}: {exc}") from exc
    table = data.get("agent", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config: expected [agent] to be a table in {path!r}")
    unknown = sorted(set(table) - set(SETTINGS) - {"labels"})
    if unknown:
        raise ConfigError(
            f"config: unknown setting(s) {', '.join(unknown)} in {path!r}; expected {', '.join(SETTINGS)}, labels"
        )
    return table


def _file_value(name: str, raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float | str):
        return str(raw)
    raise ConfigError(f"{name}: expected a string, number or boolean in the config file, got {raw!r}")


def load_config(
    args: argparse.Namespace, environ: Mapping[str, str], *, default_node_id: Callable[[], str]
) -> AgentConfig:
    """Merge flags, environment and file (in that order of precedence) into an ``AgentConfig``."""
    file_path = args.config or environ.get(CONFIG_ENV)
    file_values = _read_toml(file_path) if file_path else {}
    raw: dict[str, str] = {}
    for name, (_, env_name) in SETTINGS.items():
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            raw[name] = flag_value
        elif environ.get(env_name):
            raw[name] = environ[env_name]
        elif name in file_values:
            raw[name] = _file_value(name, file_values[name])
    if "backlog_samples" in raw and "backlog_bytes" in raw:
        raise ConfigError("backlog: expected backlog_samples or backlog_bytes, not both")
    if "token" in raw and "token_file" in raw:
        raise ConfigError(
            "token_file: expected a token or a token file, not both (--token-file and --token/NODEWATCH_TOKEN)"
        )
    values = {name: SETTINGS[name][0](text) for name, text in raw.items()}
    state_dir = Path(values["state_dir"]) if values.get("state_dir") else default_state_dir(environ, os.geteuid())
    labels = labels_from(getattr(args, "label", None), environ, file_values)
    if "collector" not in values:
        raise ConfigError("collector: expected --collector URL, NODEWATCH_COLLECTOR or 'collector' in the config file")
    interval_s: float = values.get("interval", DEFAULT_INTERVAL_S)
    backlog_bytes: int | None = values.get("backlog_bytes")
    backlog_samples: int = values.get("backlog_samples", 0) or (
        # Bounded by bytes only: a generous count cap still protects against tiny frames.
        10 * math.ceil(BACKLOG_SECONDS / interval_s) if backlog_bytes else math.ceil(BACKLOG_SECONDS / interval_s)
    )
    return AgentConfig(
        ingest_url=values["collector"],
        node_id=values.get("node_id") or default_node_id(),
        token=read_token_file(values["token_file"]) if "token_file" in values else values.get("token"),
        interval_s=interval_s,
        backlog_samples=backlog_samples,
        backlog_bytes=backlog_bytes,
        top_processes=values.get("top_processes", False),
        ws_heartbeat_s=values.get("ws_heartbeat", DEFAULT_WS_HEARTBEAT_S),
        log_level=values.get("log_level", "INFO"),
        node_key=_node_key(state_dir),
        state_dir=state_dir,
        labels=labels,
    )


def default_state_dir(environ: Mapping[str, str], euid: int) -> Path:
    """systemd's ``$STATE_DIRECTORY`` (its first entry), else /var/lib/nodewatch-agent as root, else ~/.local/state."""
    given = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    if euid == 0:
        return Path("/var/lib/nodewatch-agent")
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "nodewatch-agent"


def _node_key(state_dir: Path) -> bytes:
    """The node key in ``state_dir``, created on first start; a ConfigError naming state_dir if unusable."""
    try:
        return load_or_create_node_key(state_dir)
    except NodeKeyError as exc:
        raise ConfigError(f"state_dir: {exc}") from exc


def hostname_node_id() -> str:
    """The hostname, cleaned to the wire's node id pattern."""
    raw = socket.gethostname() or "node"
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._:@-") else "-" for ch in raw)
    cleaned = cleaned.lstrip("._:@-")[:128]
    return cleaned or f"node-{os.getpid()}"


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str], default_node_id: Callable[[], str] = hostname_node_id
) -> AgentConfig:
    """Parse ``argv`` and build the config, exiting through ``parser.error`` on a bad value."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return load_config(args, environ, default_node_id=default_node_id)
    except ConfigError as exc:
        parser.error(str(exc))
