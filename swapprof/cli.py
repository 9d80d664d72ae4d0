"""The ``swapprof`` command: the table of subcommands, and the only module that exits.

Every subcommand lives with its feature, in a module with ``add_parser(subparsers) -> None``
and ``run(args) -> int``; a module that holds two (server: serve and ctl; gate: bench and
gate) adds both and runs the one in ``args.command``. Those modules raise typed errors and never
exit; ``main`` turns the errors into exit codes: 0 success; 1 the operation ran and failed (an
upgrade rolled back, a master that could not start); 2 usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from swapprof._argtypes import Subparsers
from swapprof._errors import ConfigError, NotRunningError, SwapprofError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Subcommand(Protocol):
    """What a subcommand's module provides (modules satisfy it structurally)."""

    def add_parser(self, subparsers: Subparsers) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: Each subcommand, in ``swapprof --help`` order, and the module that parses and runs it
#: (imported when that command runs: ``swapprof ctl`` does not import the gate, the profiler
#: or the demo, and starts in a fraction of the time; ``--help`` imports them all).
COMMANDS: dict[str, str] = {
    "serve": "swapprof.server._cli",
    "ctl": "swapprof.server._cli",
    "report": "swapprof.telemetry._report_cli",
    "observe": "swapprof.integrations._cli",
    "demo": "swapprof._demo",
    "dashboards": "swapprof.dashboards._cli",
    "profile": "swapprof.pprof._cli",
    "bench": "swapprof.gate._cli",
    "gate": "swapprof.gate._cli",
}


def subcommand(command: str) -> Subcommand:
    """The module that parses and runs ``command`` (imported now)."""
    return cast(Subcommand, importlib.import_module(COMMANDS[command]))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``command``'s module only when it is one."""
    parser = argparse.ArgumentParser(
        prog="swapprof", description="Observable hot updates for Python services."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [command] if command in COMMANDS else list(COMMANDS)
    for path in dict.fromkeys(COMMANDS[name] for name in names):  # each module once, in order
        importlib.import_module(path).add_parser(sub)
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
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
    if args.version:
        from swapprof import __version__

        print(__version__)
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return subcommand(args.command).run(args)
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
