"""``swapprof dashboards export [DIR] [--check]`` and ``swapprof dashboards push --url URL ...``.

``swapprof.cli`` adds the parser and calls ``run``; errors are raised (ConfigError: exit 2,
other SwapprofError: exit 1) and turned into exit codes there.
"""

from __future__ import annotations

import argparse
import sys

from swapprof._argtypes import Subparsers
from swapprof._argtypes import seconds as _seconds
from swapprof.dashboards._export import export, stale
from swapprof.dashboards._push import DEFAULT_FOLDER, DEFAULT_TIMEOUT, ENV_TOKEN, push

EXIT_OK, EXIT_FAILED = 0, 1


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "dashboards", help="export or push the Grafana dashboards and Prometheus rules"
    )
    actions = parser.add_subparsers(dest="dashboards_action", metavar="ACTION", required=True)
    exporting = actions.add_parser("export", help="write the dashboards' JSON and rules.yml into DIR")
    exporting.add_argument("dir", nargs="?", default="dashboards", metavar="DIR", help="default ./dashboards")
    exporting.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if DIR's files differ from the generated ones",
    )
    pushing = actions.add_parser("push", help="create or update the dashboards in a Grafana (grafana-client)")
    pushing.add_argument(
        "--url", required=True, metavar="URL", help="Grafana's base URL, e.g. http://localhost:3000"
    )
    pushing.add_argument("--token", metavar="TOKEN", help=f"service account token (default: ${ENV_TOKEN})")
    pushing.add_argument(
        "--folder", default=DEFAULT_FOLDER, metavar="NAME", help=f"default {DEFAULT_FOLDER!r}"
    )
    pushing.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="S", help="per request (default 10)"
    )


def run(args: argparse.Namespace) -> int:
    if args.dashboards_action == "export":
        if args.check:
            differing = stale(args.dir)
            if differing:
                print(
                    f"swapprof: {', '.join(differing)} in {args.dir} differ from the generated files; "
                    f"run `swapprof dashboards export {args.dir}`",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            print(f"{args.dir}: up to date")
            return EXIT_OK
        for path in export(args.dir):
            print(f"wrote {path}")
        return EXIT_OK
    report = push(args.url, args.token, folder=args.folder, timeout=args.timeout)
    print("\n".join(report.lines()))
    return EXIT_OK
