"""``swapprof bench`` and ``swapprof gate``: the library side of the commands.

``add_parser`` adds both subcommands and ``run`` runs the parsed one; ``run_bench`` /
``run_gate`` return an exit code (gate: 0 pass, 1 regression) and raise ``ConfigError`` on bad input (the CLI exits 2) or
``SwapprofError`` when a target cannot be run (exit 1). They never exit themselves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from swapprof._argtypes import Subparsers
from swapprof._errors import ConfigError
from swapprof.gate import _bench
from swapprof.gate._cli_args import add_bench_options, add_gate_options
from swapprof.gate._compare import compare
from swapprof.gate._phases import phase_medians
from swapprof.gate._progress import Progress
from swapprof.gate._schema import load_results, write_results
from swapprof.gate._target import DEMO_APP, ReferenceTarget, Target
from swapprof.gate._verdict import DEFAULT_METRICS, GateOptions

DEMO_MIX = (("/", 9.0), ("/slow?ms=50", 1.0))
ENV_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def add_parser(subparsers: Subparsers) -> None:
    """Add ``bench`` and ``gate`` to ``swapprof``'s subparsers."""
    bench = subparsers.add_parser(
        "bench",
        help="measure K hot upgrades under load; write a results JSON",
        description="Start a target (the reference server, or --cmd), drive HTTP load, upgrade it K times "
        "and record every request and every upgrade's phases.",
    )
    add_bench_options(bench)
    gate = subparsers.add_parser(
        "gate",
        help="fail (exit 1) when a results JSON regressed against a baseline",
        description="Compare two bench results: client errors, failed upgrades, and time_to_ready and p99 "
        "latency during upgrades judged by a bootstrap confidence bound. Exit 0 pass, 1 regression, 2 bad input.",
    )
    add_gate_options(gate)


def run(args: argparse.Namespace) -> int:
    return run_bench(args) if args.command == "bench" else run_gate(args)


def make_target(args: argparse.Namespace) -> Target:
    env = dict(args.env)
    if args.cmd or args.upgrade_cmd:
        if not (args.cmd and args.upgrade_cmd):
            raise ConfigError("--cmd and --upgrade-cmd go together")
        if args.app or args.app_dir or args.serve_arg:
            raise ConfigError("--app, --app-dir and --serve-arg are for the reference server, not --cmd")
        from swapprof.gate._command import CommandTarget

        return CommandTarget(
            args.cmd,
            args.upgrade_cmd,
            probe_path=args.probe_path,
            probe_field=args.probe_field,
            pid_file=args.pid_file,
            env=env,
            ready_timeout=args.ready_timeout,
        )
    if args.app_dir and not Path(args.app_dir).is_dir():
        raise ConfigError(f"--app-dir {args.app_dir!r} is not a directory")
    return ReferenceTarget(args.app or DEMO_APP, app_dir=args.app_dir, serve_args=args.serve_arg, env=env)


def make_config(args: argparse.Namespace) -> _bench.BenchConfig:
    if args.clients + args.new_clients < 1:
        raise ConfigError("--clients and --new-clients add up to 0: there would be no load")
    demo = not args.cmd and (args.app or DEMO_APP) == DEMO_APP
    paths = tuple(args.path) or (DEMO_MIX if demo else (("/", 1.0),))
    if sum(w for _, w in paths) <= 0:
        raise ConfigError("the --path weights add up to 0")
    load = _bench.LoadSpec(args.clients, args.new_clients, args.rate, paths, args.timeout, args.seed)
    return _bench.BenchConfig(
        args.upgrades, args.interval, args.warmup, load, args.keep_requests, args.yardstick
    )


def _write(path: str, text: str, append: bool = False) -> None:
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a" if append else "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None


def summary(doc: dict[str, Any]) -> str:
    ok = sum(u["outcome"] == "success" for u in doc["upgrades"])
    lines = [
        f"swapprof bench: {len(doc['upgrades'])} upgrades ({ok} succeeded), "
        f"{doc['requests']['total']} requests ({doc['requests'].get('retried', 0)} retried on a new connection), "
        f"{sum(doc['errors'].values())} errors"
    ]
    for key in ("time_to_ready_ms", "upgrade_total_ms", "upgrade_p99_ms"):
        values = doc["samples"][key]
        if values:
            lines.append(
                f"  {key[:-3]:<15} median {statistics.median(values):8.1f} ms  (min {min(values):.1f}, max {max(values):.1f})"
            )
    steady, during = doc["latency_ms"]["steady"], doc["latency_ms"]["upgrade"]
    lines.append(
        f"  client latency  p50/p99 steady {steady['p50'] or 0:.1f}/{steady['p99'] or 0:.1f} ms, "
        f"during upgrades {during['p50'] or 0:.1f}/{during['p99'] or 0:.1f} ms"
    )
    phases = " ".join(f"{k} {v:.1f}" for k, v in phase_medians(doc).items())
    lines.append(f"  phase medians   {phases} ms" if phases else "  no successful upgrade")
    lines += [f"  errors          {k} {v}" for k, v in doc["errors"].items() if v]
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    config, target = make_config(args), make_target(args)
    progress = Progress(config.upgrades, enabled=not args.quiet)
    doc = _bench.run(target, config, progress)
    if args.output:
        write_results(doc, args.output)
    return doc


def run_bench(args: argparse.Namespace) -> int:
    doc = bench(args)
    print(summary(doc) + (f"\nwrote {args.output}" if args.output else ""))
    return 0


def run_gate(args: argparse.Namespace) -> int:
    from swapprof.gate._junit import render_junit
    from swapprof.gate._report_html import render_html
    from swapprof.gate._report_md import render_markdown, render_text

    caps: dict[str, float] = {}
    for name, value in args.cap:
        try:
            caps[name] = float(value)
        except ValueError:
            raise ConfigError(f"--cap {name}={value}: {value!r} is not a number of ms") from None
    options = GateOptions(
        threshold=args.threshold,
        confidence=args.confidence,
        max_errors=args.max_errors,
        max_failed_upgrades=args.max_failed_upgrades,
        metrics=tuple(dict.fromkeys(args.metric or DEFAULT_METRICS)),
        caps=caps,
        resamples=args.resamples,
        seed=args.bootstrap_seed,
        normalize=args.normalize,
        judge_service_gap=not args.metric,
    )
    baseline = load_results(args.baseline)
    current = bench(args) if args.run else load_results(args.current)
    verdict = compare(baseline, current, options)
    markdown = render_markdown(verdict)
    if args.markdown:
        _write(args.markdown, markdown)
    if os.environ.get(ENV_STEP_SUMMARY):
        _write(os.environ[ENV_STEP_SUMMARY], markdown + "\n", append=True)
    if args.junit:
        _write(args.junit, render_junit(verdict))
    if args.html:
        _write(args.html, render_html(verdict))
    print(render_text(verdict))
    sys.stdout.flush()
    return 0 if verdict.passed else 1
