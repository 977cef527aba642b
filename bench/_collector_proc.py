"""Run the real collector (``collector.cli.serve``) with settings the CLI does not expose yet.

``nodewatch collector`` has no flags for the send timeout, the hello timeout or
the websocket ping interval; fault tests need them short so they finish in
seconds (and ``bench/faults.py`` too). This launcher parses the collector's own options with the
collector's own parser, then replaces those three fields, and serves exactly
as ``nodewatch collector`` does. It is a test and bench tool, not a second CLI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from collector.cli import build_parser, config_from_args, serve
from collector.store.datadir import default_data_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``nodewatch collector`` options plus the three test-only ones, then serve."""
    parser = build_parser()
    parser.add_argument("--send-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--hello-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--ws-heartbeat", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    default_dir = default_data_dir(os.environ, os.geteuid(), Path.home())
    config = config_from_args(parser, args, os.environ, default_dir=default_dir)
    overrides = {
        "send_timeout_s": args.send_timeout,
        "hello_timeout_s": args.hello_timeout,
        "ws_heartbeat_s": args.ws_heartbeat,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(config, None))


if __name__ == "__main__":
    sys.exit(main())
