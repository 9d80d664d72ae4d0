"""``swapprof report [RUN_DIR] [--html FILE] [--last N]``: the per-upgrade waterfall of a run dir.

``swapprof.cli`` calls ``add_parser`` and ``run``; a missing or unreadable span file raises
``ConfigError`` (exit 2 there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from swapprof._argtypes import Subparsers
from swapprof._argtypes import count as _count
from swapprof._argtypes import run_dir as _run_dir

EXIT_OK = 0


def add_parser(subparsers: Subparsers) -> None:
    report = subparsers.add_parser("report", help="per-upgrade waterfall from a run dir's span file")
    report.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR", help="default ./.swapprof")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML timeline")
    report.add_argument("--last", type=_count, metavar="N", help="only the last N upgrades")


def run(args: argparse.Namespace) -> int:
    from swapprof.telemetry._report import load_upgrades, render_html, render_text

    upgrades = load_upgrades(_run_dir(args.run_dir))
    if args.last:
        upgrades = upgrades[-args.last :]
    print(render_text(upgrades))
    if args.html:
        Path(args.html).write_text(render_html(upgrades))
        print(f"wrote {args.html}")
    return EXIT_OK
