"""``swapprof observe [--server NAME] [--run-dir DIR] [--metrics-bind ADDR] -- CMD...``.

``swapprof.cli`` calls ``add_parser`` and ``run``; no command, or one that cannot be started,
raises ``ConfigError`` (exit 2 there). The exit status is CMD's.
"""

from __future__ import annotations

import argparse
import os

from swapprof._argtypes import Subparsers
from swapprof._argtypes import run_dir as _run_dir

SERVERS = ("auto", "uvicorn", "granian", "hypercorn", "generic")


def add_parser(subparsers: Subparsers) -> None:
    observe = subparsers.add_parser(
        "observe", help="run a server with no hooks (uvicorn --workers, granian) and record its upgrades"
    )
    observe.add_argument(
        "--server", choices=SERVERS, default="auto", help="which server CMD is (default: from CMD's name)"
    )
    observe.add_argument(
        "--run-dir", default=None, metavar="DIR", help="records, spans, state (default ./.swapprof)"
    )
    observe.add_argument(
        "--metrics-bind",
        default=None,
        metavar="ADDR",
        help="the observer's /metrics (default $SWAPPROF_METRICS_BIND, else 127.0.0.1:0)",
    )
    observe.add_argument(
        "server_command", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the server to run"
    )


def run(args: argparse.Namespace) -> int:
    from swapprof.integrations._adapters import adapter_for
    from swapprof.integrations._gunicorn_master import ENV_DEBUG_TOKEN, ENV_METRICS_BIND
    from swapprof.integrations._observe import Observer

    command = list(args.server_command)
    if command[:1] == ["--"]:
        command = command[1:]
    adapter = adapter_for(command, None if args.server == "auto" else args.server)
    observer = Observer(
        command,
        adapter,
        _run_dir(args.run_dir),
        metrics_bind=args.metrics_bind or os.environ.get(ENV_METRICS_BIND) or "127.0.0.1:0",
        token=os.environ.get(ENV_DEBUG_TOKEN) or None,
    )
    return observer.run()
