"""The ``swapprof`` command: the table of subcommands, and the only module that exits.

Every subcommand lives with its feature, in a module with ``add_parser(subparsers) -> None``
and ``run(args) -> int``; a module that holds two (server: serve and ctl; gate: bench and
gate) adds both and runs the one in ``args.command``. Those modules raise typed errors and never
exit; ``main`` turns the errors into exit codes: 0 success; 1 the operation ran and failed (an
upgrade rolled back, a master that could not start); 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from swapprof import _demo
from swapprof._argtypes import Subparsers
from swapprof._errors import ConfigError, NotRunningError, SwapprofError
from swapprof.dashboards import _cli as dashboards_cli
from swapprof.gate import _cli as gate_cli
from swapprof.integrations import _cli as integrations_cli
from swapprof.pprof import _cli as pprof_cli
from swapprof.server import _cli as server_cli
from swapprof.telemetry import _report_cli as report_cli

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Subcommand(Protocol):
    """What a subcommand's module provides (modules satisfy it structurally)."""

    def add_parser(self, subparsers: Subparsers) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: Each subcommand, in ``swapprof --help`` order, and the module that parses and runs it.
COMMANDS: dict[str, Subcommand] = {
    "serve": server_cli,
    "ctl": server_cli,
    "report": report_cli,
    "observe": integrations_cli,
    "demo": _demo,
    "dashboards": dashboards_cli,
    "profile": pprof_cli,
    "bench": gate_cli,
    "gate": gate_cli,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swapprof", description="Observable hot updates for Python services."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS.values()):  # each module once, in table order
        module.add_parser(sub)
    return parser


def subcommand_parsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by its command line, nested ones too: "ctl", "ctl upgrade", ...

    For documentation checks: each parser's ``_actions`` hold its flags, defaults and help.
    """
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[f"{prefix}{name}"] = child
                    walk(child, f"{prefix}{name} ")

    walk(parser or build_parser(), "")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from swapprof import __version__

        print(__version__)
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except ConfigError as exc:
        print(f"swapprof: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotRunningError as exc:
        print(f"swapprof: {exc}; is `swapprof serve` running with this --run-dir?", file=sys.stderr)
        return EXIT_FAILED
    except SwapprofError as exc:
        print(f"swapprof: error: {exc}", file=sys.stderr)
        record = getattr(exc, "record", None)
        if record and record.get("tail"):
            print("last output of the new generation:", file=sys.stderr)
            for line in record["tail"]:
                print(f"  | {line}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
