"""``nodewatch admin``: the operator's node-key commands, over the collector's admin API (docs/protocol.md, 8.5).

- ``keys``: every node id's key fingerprint;
- ``forget NODE``: drop a node and its key, so its id is trusted on first use again;
- ``rotate-key NODE``: accept the next different key for NODE once, within 24 h;
- ``pin NODE FINGERPRINT``: bind NODE to a fingerprint now, dropping whoever holds it;
- ``fingerprint``: on a node, print the fingerprint its agent presents (what ``pin`` takes),
  from the agent's state dir; it talks to no collector.

The admin token comes from ``--token-file`` or ``$NODEWATCH_ADMIN_TOKEN``, never a flag (flags show
up in ``ps``). Stdlib only (``urllib``). Not here: the rules themselves (``collector.trust``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from agent.config import default_state_dir, hostname_node_id
from agent.identity import NodeKeyError, fingerprint, load_or_create_node_key, node_credential

ENV_TOKEN = "NODEWATCH_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a token
TIMEOUT_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    """The ``nodewatch admin`` command line."""
    parser = argparse.ArgumentParser(prog="nodewatch admin", description="Manage node keys on a collector.")
    parser.add_argument("--collector", default="http://127.0.0.1:8765", metavar="URL", help="(%(default)s)")
    parser.add_argument("--token-file", type=Path, metavar="FILE", help=f"the admin token (else ${ENV_TOKEN})")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="list every node id's key fingerprint")
    for name, text in (("forget", "forget a node and its key"), ("rotate-key", "accept the next new key once")):
        sub.add_parser(name, help=text).add_argument("node_id")
    pin = sub.add_parser("pin", help="bind a node id to a fingerprint now")
    pin.add_argument("node_id")
    pin.add_argument("fingerprint", help="SHA256:... as 'nodewatch admin fingerprint' prints it on the node")
    local = sub.add_parser("fingerprint", help="on a node: the fingerprint its agent presents to --collector")
    local.add_argument("--state-dir", type=Path, metavar="DIR", help="the agent's state dir (its default)")
    local.add_argument("--node-id", metavar="ID", help="the agent's node id (default: the hostname)")
    return parser


def _token(parser: argparse.ArgumentParser, path: Path | None, environ: Mapping[str, str]) -> str:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--token-file: expected a readable UTF-8 file, got {str(path)!r}: {exc.__class__.__name__}")
    token = environ.get(ENV_TOKEN, "").strip()
    if not token:
        parser.error(f"--token-file: expected an admin token in a file or ${ENV_TOKEN}, got neither")
    return token


def _request(base: str, method: str, path: str, token: str, body: dict[str, str] | None = None) -> tuple[int, Any]:
    """One admin API call: its HTTP status and JSON body."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)  # noqa: S310 - the operator's URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the operator's URL
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None


def _local_fingerprint(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    state_dir = args.state_dir or default_state_dir(environ, os.geteuid())
    try:
        key = load_or_create_node_key(state_dir)
    except NodeKeyError as exc:
        print(f"nodewatch admin: error: {exc}", file=sys.stderr)
        return 1
    host = (urlsplit(args.collector).hostname or "").lower()
    print(fingerprint(node_credential(key, args.node_id or hostname_node_id(), host)))
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``nodewatch admin`` and return its exit status (0 on success, 1 when the collector refused)."""
    env = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "fingerprint":
        return _local_fingerprint(args, env)
    token = _token(parser, args.token_file, env)
    node = quote(getattr(args, "node_id", ""), safe="")
    method, path, body = {
        "keys": ("GET", "/api/v1/keys", None),
        "forget": ("DELETE", f"/api/v1/nodes/{node}", None),
        "rotate-key": ("POST", f"/api/v1/nodes/{node}/rotate-key", None),
        "pin": ("PUT", f"/api/v1/nodes/{node}/key", {"fingerprint": getattr(args, "fingerprint", "")}),
    }[args.command]
    try:
        status, answer = _request(args.collector, method, path, token, body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"nodewatch admin: error: --collector {args.collector}: {exc}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        print(f"nodewatch admin: error: the collector answered {status}: {detail!r}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0
