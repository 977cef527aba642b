"""``nodewatch collector``'s command line: the options, and how they become a ``CollectorConfig``.

Every bad value ends in ``parser.error`` naming the setting and what it accepts. It reads
the token and alert files the options name and the environment mapping it is given, and
nothing else: no signals, no logging, no socket (``collector.cli``).

Not here: serving (``collector.cli.serve``) and the startup chores (``collector.startup``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from collector.alerts.routes import AlertsConfig, load_alerts_config, parse_alerts_config
from collector.alerts.settings import AlertConfigError
from collector.config import DEFAULT_FORGET_AFTER_S, DEFAULT_HOST, DEFAULT_MAX_NODES, DEFAULT_PORT, CollectorConfig
from collector.fanout import DEFAULT_MAX_SUBSCRIBERS
from collector.startup import is_loopback
from collector.trust.scope import parse_token_specs

Number = TypeVar("Number", int, float)

ENV_AGENT_TOKENS = "NODEWATCH_AGENT_TOKENS"
ENV_VIEWER_TOKENS = "NODEWATCH_VIEWER_TOKENS"
ENV_ADMIN_TOKENS = "NODEWATCH_ADMIN_TOKENS"


def build_parser() -> argparse.ArgumentParser:
    """The ``nodewatch collector`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="nodewatch collector",
        description="Hold the fleet's state; serve agents, viewers, a JSON API and Prometheus /metrics.",
        epilog=f"Tokens also come from ${ENV_AGENT_TOKENS} and ${ENV_VIEWER_TOKENS} (comma-separated).",
    )
    parser.add_argument(
        "--bind",
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help="address to listen on (%(default)s)",
    )
    parser.add_argument(
        "--agent-token-file",
        type=Path,
        metavar="FILE",
        help="agent bearer tokens, one per line; 'TOKEN web-*,db-??' limits a token to those node ids",
    )
    parser.add_argument("--viewer-token-file", type=Path, metavar="FILE", help="viewer bearer tokens, one per line")
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        metavar="FILE",
        help="admin bearer tokens, one per line: forget nodes, rotate or pin node keys (without it: 403)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --bind without agent and viewer tokens"
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate: serve https and wss")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--forget-after",
        type=float,
        default=DEFAULT_FORGET_AFTER_S,
        metavar="SECONDS",
        help="drop offline nodes after this long (%(default)g)",
    )
    parser.add_argument(
        "--max-nodes",
        type=int,
        default=DEFAULT_MAX_NODES,
        metavar="N",
        help="refuse new node ids beyond N with close code 4503 (%(default)s)",
    )
    parser.add_argument(
        "--max-subscribers",
        type=int,
        default=DEFAULT_MAX_SUBSCRIBERS,
        metavar="N",
        help="answer subscribe requests beyond N open viewers with HTTP 503 and Retry-After (%(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the node registry and history here (root: /var/lib/nodewatch; a user: "
        "$XDG_STATE_HOME/nodewatch, else ~/.local/state/nodewatch); '' keeps them in memory only",
    )
    parser.add_argument(
        "--ephemeral", action="store_true", help="keep nothing on disk: the fleet and history die with the process"
    )
    parser.add_argument(
        "--store-sync",
        choices=["normal", "full"],
        default="normal",
        help="normal: an acked sample survives a crash of the process; full: also a power loss, "
        "one fsync per commit (%(default)s)",
    )
    parser.add_argument(
        "--alerts-config",
        type=Path,
        metavar="FILE",
        help="TOML file whose [alerts] table holds alert rules and notification routes (docs/alerts.md); "
        "without it, the built-in rules and no notifications",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(%(default)s)"
    )
    return parser


def parse_bind(parser: argparse.ArgumentParser, bind: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) or call parser.error naming --bind."""
    host, sep, port_text = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        parser.error(f"--bind: expected HOST:PORT with a port 0-65535, got {bind!r}")
    return host, int(port_text)


def read_tokens(
    parser: argparse.ArgumentParser, option: str, path: Path | None, env_value: str | None
) -> frozenset[str]:
    """Tokens from a file (one per line, # comments) and an env value (comma-separated)."""
    tokens: set[str] = set()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(
                f"{option}: expected a readable UTF-8 file of tokens, got {str(path)!r}: {exc.__class__.__name__}"
            )
        tokens.update(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
        if not tokens:
            parser.error(f"{option}: expected at least one token in {str(path)!r}, got none")
    if env_value:
        tokens.update(t.strip() for t in env_value.split(",") if t.strip())
    return frozenset(tokens)


def data_dir_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, default: Path | None) -> Path | None:
    """The store's dir: --data-dir, else ``default``; None (in memory) for --ephemeral or --data-dir ''."""
    if args.ephemeral:
        if args.data_dir:
            parser.error(f"--ephemeral and --data-dir: expected one of them, got both (--data-dir {args.data_dir!r})")
        return None
    if args.data_dir is None:
        return default
    return Path(args.data_dir) if args.data_dir else None


def tls_from_args(
    parser: argparse.ArgumentParser, cert: Path | None, key: Path | None
) -> tuple[Path | None, Path | None]:
    """--tls-cert and --tls-key, both given and both files, or neither; else parser.error."""
    if (cert is None) != (key is None):
        parser.error("--tls-cert and --tls-key: expected both or neither, got one")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            parser.error(f"{option}: expected a PEM file, got {str(path)!r} which does not exist")
    return cert, key


def positive(parser: argparse.ArgumentParser, option: str, value: Number, accepts: str) -> Number:
    """``value`` if it is above 0 (NaN is not), else parser.error naming ``option`` and what it ``accepts``."""
    if not value > 0:
        parser.error(f"{option}: expected {accepts}, got {value!r}")
    return value


def alerts_from_args(parser: argparse.ArgumentParser, path: Path | None) -> AlertsConfig:
    """The checked ``[alerts]`` table of --alerts-config (the built-in rules without one), or parser.error."""
    if path is None:
        return parse_alerts_config({})
    try:
        return load_alerts_config(path)
    except AlertConfigError as exc:
        parser.error(f"--alerts-config {str(path)!r}: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"--alerts-config: expected a readable UTF-8 TOML file, got {str(path)!r}: {type(exc).__name__}")


def config_from_args(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    default_dir: Path | None = None,
) -> CollectorConfig:
    """Turn parsed options and the environment into a config, or call parser.error naming the setting.

    ``default_dir`` is where the store lives without --data-dir (``main`` passes the user's or
    root's default); None keeps the store in memory.
    """
    host, port = parse_bind(parser, args.bind)
    agent_tokens = read_tokens(parser, "--agent-token-file", args.agent_token_file, environ.get(ENV_AGENT_TOKENS))
    viewer_tokens = read_tokens(parser, "--viewer-token-file", args.viewer_token_file, environ.get(ENV_VIEWER_TOKENS))
    admin_tokens = read_tokens(parser, "--admin-token-file", args.admin_token_file, environ.get(ENV_ADMIN_TOKENS))
    try:
        parse_token_specs(agent_tokens)  # "TOKEN web-*,db-??" lines scope a token (collector.trust.scope)
    except ValueError as exc:
        parser.error(f"--agent-token-file: {exc}")
    if not is_loopback(host) and not args.insecure and not (agent_tokens and viewer_tokens):
        parser.error(
            f"--bind {args.bind}: a non-loopback address needs agent tokens "
            f"(--agent-token-file or ${ENV_AGENT_TOKENS}) and viewer tokens "
            f"(--viewer-token-file or ${ENV_VIEWER_TOKENS}); pass --insecure to serve without them"
        )
    tls_cert, tls_key = tls_from_args(parser, args.tls_cert, args.tls_key)
    return CollectorConfig(
        host=host,
        port=port,
        agent_tokens=agent_tokens,
        viewer_tokens=viewer_tokens,
        admin_tokens=admin_tokens,
        insecure=args.insecure,
        tls_cert=tls_cert,
        tls_key=tls_key,
        forget_after_s=positive(parser, "--forget-after", args.forget_after, "seconds > 0"),
        max_nodes=positive(parser, "--max-nodes", args.max_nodes, "an integer >= 1"),
        alerts_config=args.alerts_config,
        alerts=alerts_from_args(parser, args.alerts_config),
        data_dir=data_dir_from_args(parser, args, default_dir),
        store_sync="FULL" if args.store_sync == "full" else "NORMAL",
    )
