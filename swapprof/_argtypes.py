"""What the CLI's subcommands share: argparse value types (a bad value is a usage error: exit 2),
the run dir's resolution, and the type of the ``subparsers`` every ``add_parser`` receives."""

from __future__ import annotations

import argparse
import math
import os
from typing import TypeAlias

from swapprof._vocabulary import DEFAULT_RUN_DIR, ENV_RUN_DIR

#: What ``swapprof.cli`` hands every subcommand module's ``add_parser``.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def count(text: str) -> int:
    """A whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def run_dir(value: str | None) -> str:
    """A command's run dir: its ``--run-dir``/``RUN_DIR``, then ``$SWAPPROF_RUN_DIR``, then ./.swapprof."""
    return value or os.environ.get(ENV_RUN_DIR) or DEFAULT_RUN_DIR
