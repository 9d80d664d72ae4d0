"""Arguments of ``swapprof bench`` and ``swapprof gate`` (the gate's ``--run`` takes the bench's)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from swapprof.gate._target import DEMO_APP
from swapprof.gate._verdict import DEFAULT_METRICS, KNOWN


def _number(kind: Callable[[str], float], low: float, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {low:g}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = _number(float, 0, "a fraction like 0.2 or 20%")(text.removesuffix("%"))
    return float(value / 100 if text.endswith("%") else value)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return key, value


def _path(text: str) -> tuple[str, float]:
    """``PATH`` or ``PATH@WEIGHT`` (a relative weight in the mix)."""
    path, sep, weight = text.rpartition("@")
    if not sep:
        path, weight = text, "1"
    if not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: a path starts with '/'")
    return path, _number(float, 0, "a weight")(weight)


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target (default: the reference server running --app)")
    target.add_argument(
        "--app", metavar="MODULE:APP", help=f"ASGI app for `swapprof serve` (default {DEMO_APP})"
    )
    target.add_argument("--app-dir", metavar="DIR", help="directory put first on the app's sys.path")
    target.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `swapprof serve` argument, repeatable: --serve-arg=--preload=uvicorn",
    )
    target.add_argument(
        "--cmd", metavar="'COMMAND {port}'", help="run this server instead (split like a shell line)"
    )
    target.add_argument(
        "--upgrade-cmd", metavar="'COMMAND {pid}'", help="upgrades a --cmd server (run by /bin/sh)"
    )
    target.add_argument(
        "--probe-path",
        default="/",
        metavar="PATH",
        help="path whose answer changes per generation (default /)",
    )
    target.add_argument(
        "--probe-field", metavar="FIELD", help="compare this JSON field of the answer, not the whole body"
    )
    target.add_argument(
        "--pid-file", metavar="FILE", help="where a --cmd server writes its main pid ({tmpdir} allowed)"
    )
    target.add_argument(
        "--ready-timeout",
        type=_number(float, 0.1, "seconds"),
        default=60.0,
        metavar="S",
        help="start/upgrade limit for --cmd (default 60)",
    )
    target.add_argument(
        "--env",
        action="append",
        type=_key_value,
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server (repeatable)",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--upgrades",
        type=_number(int, 1, "a whole number"),
        default=10,
        metavar="K",
        help="upgrades to measure (default 10)",
    )
    run.add_argument(
        "--interval",
        type=_number(float, 0, "seconds"),
        default=1.0,
        metavar="S",
        help="steady state after each upgrade (default 1)",
    )
    run.add_argument(
        "--warmup",
        type=_number(float, 0, "seconds"),
        default=1.0,
        metavar="S",
        help="load before the first upgrade (default 1)",
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--clients",
        type=_number(int, 0, "a whole number"),
        default=4,
        metavar="N",
        help="keep-alive clients (default 4)",
    )
    load.add_argument(
        "--new-clients",
        type=_number(int, 0, "a whole number"),
        default=2,
        metavar="N",
        help="clients opening a connection per request (default 2)",
    )
    load.add_argument(
        "--rate",
        type=_number(float, 0, "requests per second"),
        default=100.0,
        metavar="R",
        help="total requests/s; 0 = as fast as the clients can (default 100)",
    )
    load.add_argument(
        "--path",
        action="append",
        type=_path,
        default=[],
        metavar="PATH[@WEIGHT]",
        help="request mix (repeatable); default / (demo app: /@9 /slow?ms=50@1)",
    )
    load.add_argument(
        "--timeout",
        type=_number(float, 0.1, "seconds"),
        default=10.0,
        metavar="S",
        help="per-request timeout (default 10)",
    )
    load.add_argument(
        "--seed",
        type=_number(int, 0, "a whole number"),
        default=1,
        metavar="N",
        help="seed of the path mix (default 1)",
    )
    run.add_argument(
        "--no-yardstick",
        dest="yardstick",
        action="store_false",
        help="skip timing the machine-speed yardstick before each upgrade",
    )
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE", help="write the results JSON here")
    out.add_argument("--keep-requests", action="store_true", help="include every request in the JSON")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", required=True, metavar="FILE", help="results JSON of the base build")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--current", metavar="FILE", help="results JSON of the build under test")
    which.add_argument("--run", action="store_true", help="bench the current build now (bench options below)")
    rules = parser.add_argument_group("rules")
    rules.add_argument(
        "--threshold",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="allowed slowdown, 0.2 or 20%% (default 20%%)",
    )
    rules.add_argument(
        "--confidence",
        type=_fraction,
        default=0.95,
        metavar="C",
        help="one-sided confidence of the bound (default 0.95)",
    )
    rules.add_argument(
        "--max-errors",
        type=_number(int, 0, "a whole number"),
        default=0,
        metavar="N",
        help="client errors allowed (default 0)",
    )
    rules.add_argument(
        "--max-failed-upgrades",
        type=_number(int, 0, "a whole number"),
        default=0,
        metavar="N",
        help="failed upgrades allowed (default 0)",
    )
    rules.add_argument(
        "--metric",
        action="append",
        choices=KNOWN,
        metavar="NAME",
        help=f"metrics judged by ratio (repeatable; default {' '.join(DEFAULT_METRICS)}; phase:NAME for one phase)",
    )
    rules.add_argument(
        "--cap",
        action="append",
        type=_key_value,
        default=[],
        metavar="METRIC=MS",
        help="absolute cap on the current median (repeatable)",
    )
    rules.add_argument(
        "--resamples",
        type=_number(int, 100, "a whole number"),
        default=2000,
        metavar="N",
        help="bootstrap resamples (default 2000)",
    )
    rules.add_argument(
        "--bootstrap-seed",
        type=_number(int, 0, "a whole number"),
        default=1,
        metavar="N",
        help="bootstrap seed (default 1)",
    )
    rules.add_argument(
        "--raw",
        dest="normalize",
        action="store_false",
        help="judge time_to_ready in raw ms, not relative to the machine-speed yardstick",
    )
    reports = parser.add_argument_group("reports")
    reports.add_argument(
        "--markdown", metavar="FILE", help="Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)"
    )
    reports.add_argument("--junit", metavar="FILE", help="JUnit XML, one test case per check")
    reports.add_argument("--html", metavar="FILE", help="self-contained HTML report with pictures")
    add_bench_options(parser)
