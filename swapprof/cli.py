"""The ``swapprof`` command. The only module that turns errors into exit codes.

Exit codes: 0 success; 1 the operation ran and failed (an upgrade rolled back, a master that
could not start); 2 usage or input error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from swapprof._argtypes import count as _count
from swapprof._argtypes import seconds as _seconds
from swapprof._errors import ConfigError, ControlError, NotRunningError, SwapprofError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swapprof", description="Observable hot updates for Python services."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the reference hot-restart server")
    serve.add_argument("app", metavar="MODULE:APP", help="the ASGI app, e.g. swapprof.server.demo:app")
    serve.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="listen address (repeatable; [::1]:PORT for IPv6, unix:PATH; port 0 picks one)",
    )
    serve.add_argument("--uds", metavar="PATH", help="also listen on this Unix socket")
    serve.add_argument("--app-dir", metavar="DIR", help="directory put first on the app's sys.path")
    serve.add_argument(
        "--run-dir", metavar="DIR", help="pid file, control socket, state (default ./.swapprof)"
    )
    serve.add_argument(
        "--ready-timeout", type=_seconds, metavar="S", help="spawn-to-READY limit (default 30)"
    )
    serve.add_argument(
        "--drain-timeout", type=_seconds, metavar="S", help="old generation's drain limit (default 30)"
    )
    serve.add_argument(
        "--drain-grace",
        type=_seconds,
        metavar="S",
        help="how long idle keep-alive connections stay open after the switch (default 1)",
    )
    serve.add_argument("--probe-path", metavar="PATH", help="app path the self-probe must get a 2xx from")
    serve.add_argument(
        "--preload",
        metavar="PKG[,PKG...]",
        help="start a zygote that imports these packages once; upgrades fork it (millisecond switch)",
    )
    serve.add_argument(
        "--no-spare",
        dest="spare",
        action="store_false",
        default=None,
        help="with --preload: do not keep a generation forked and warmed ahead of the next upgrade",
    )
    serve.add_argument(
        "--debug-bind",
        metavar="HOST:PORT",
        help="master's /metrics and /debug/swapprof/* (default 127.0.0.1:0; '' turns it off)",
    )
    serve.add_argument(
        "--debug-token", metavar="TOKEN", help="require 'Authorization: Bearer TOKEN' on debug routes"
    )
    serve.add_argument(
        "--app-metrics-path",
        metavar="PATH",
        help="path each generation serves its own metrics on (default /metrics; '' turns it off)",
    )

    ctl = sub.add_parser("ctl", help="talk to a running master")
    ctl.add_argument(
        "--run-dir", default=None, metavar="DIR", help="the master's run dir (default ./.swapprof)"
    )
    ctl_sub = ctl.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = ctl_sub.add_parser("status", help="generations and counters")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    upgrade = ctl_sub.add_parser("upgrade", help="start a hot upgrade")
    upgrade.add_argument("--wait", action="store_true", help="return when it ended; exit 1 on rollback")
    upgrade.add_argument("--json", action="store_true", help="print the upgrade record as JSON")
    upgrade.add_argument("--timeout", type=_seconds, default=600.0, metavar="S", help="how long --wait waits")
    reload = ctl_sub.add_parser("reload", help="reload modules in place in the serving generation, tracked")
    reload.add_argument(
        "modules", nargs="*", metavar="MODULE", help="default: the app's module (and its package)"
    )
    reload.add_argument("--wait", action="store_true", help="return with the result; exit 1 if it failed")
    reload.add_argument("--json", action="store_true", help="print the result as JSON")
    stop = ctl_sub.add_parser("stop", help="gracefully stop the master and its generations")
    stop.add_argument("--wait", action="store_true", help="return when the master has exited")
    stop.add_argument("--timeout", type=_seconds, default=120.0, metavar="S", help="how long --wait waits")

    report = sub.add_parser("report", help="per-upgrade waterfall from a run dir's span file")
    report.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR", help="default ./.swapprof")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML timeline")
    report.add_argument("--last", type=_count, metavar="N", help="only the last N upgrades")

    demo = sub.add_parser("demo", help="start the server, drive load, hot-upgrade it, print the report")
    demo.add_argument(
        "--upgrades", type=_count, default=3, metavar="N", help="number of upgrades (default 3)"
    )
    demo.add_argument("--run-dir", metavar="DIR", help="keep the run files here (default: a temporary dir)")
    demo.add_argument(
        "--no-zygote", dest="zygote", action="store_false", help="skip the second run with --preload"
    )
    from swapprof.dashboards._cli import add_parser as add_dashboards_parser
    from swapprof.gate._cli import add_parsers as add_gate_parsers
    from swapprof.pprof._cli import add_parser as add_profile_parser

    add_dashboards_parser(sub)
    add_profile_parser(sub)
    add_gate_parsers(sub)
    return parser


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
        if args.command == "serve":
            return _serve(args)
        if args.command == "ctl":
            return _ctl(args)
        if args.command in ("bench", "gate"):
            from swapprof.gate._cli import run_bench, run_gate

            return run_bench(args) if args.command == "bench" else run_gate(args)
        if args.command == "profile":
            from swapprof.pprof._cli import run as run_profile

            return run_profile(args)
        if args.command == "dashboards":
            from swapprof.dashboards._cli import run as run_dashboards

            return run_dashboards(args)
        if args.command == "report":
            return _report(args)
        if args.command == "demo":
            from swapprof._demo import run_demo

            return run_demo(upgrades=args.upgrades, run_dir=args.run_dir, zygote=args.zygote)
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
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    from swapprof.server import ServerConfig, serve

    config = ServerConfig.from_env(
        args.app,
        binds=tuple(args.bind),
        uds=args.uds,
        app_dir=args.app_dir,
        run_dir=args.run_dir,
        ready_timeout=args.ready_timeout,
        drain_timeout=args.drain_timeout,
        drain_grace=args.drain_grace,
        probe_path=args.probe_path,
        debug_bind=args.debug_bind,
        debug_token=args.debug_token,
        app_metrics_path=args.app_metrics_path,
        spare=args.spare,
        preload=tuple(p.strip() for p in args.preload.split(",") if p.strip())
        if args.preload is not None
        else None,
    )
    return asyncio.run(serve(config))


def _run_dir(args: argparse.Namespace) -> str:
    import os

    return args.run_dir or os.environ.get("SWAPPROF_RUN_DIR") or ".swapprof"


def _ctl(args: argparse.Namespace) -> int:
    from swapprof.server import control_request

    run_dir = _run_dir(args)
    if args.action == "status":
        answer = control_request(run_dir, {"cmd": "status"})
        answer.pop("ok", None)
        print(json.dumps(answer, indent=2) if args.json else format_status(answer))
        return EXIT_OK
    if args.action == "upgrade":
        if not args.wait:
            control_request(run_dir, {"cmd": "upgrade"})
            print(json.dumps({"accepted": True}) if args.json else "upgrade requested")
            return EXIT_OK
        record = control_request(run_dir, {"cmd": "upgrade", "wait": True}, timeout=args.timeout)["upgrade"]
        print(json.dumps(record, indent=2) if args.json else format_upgrade(record))
        return EXIT_OK if record.get("outcome") == "success" else EXIT_FAILED
    if args.action == "reload":
        answer = control_request(
            run_dir, {"cmd": "reload", "modules": args.modules, "wait": args.wait}, timeout=180
        )
        if not args.wait:
            print(
                json.dumps(answer) if args.json else f"reload requested in generation {answer['generation']}"
            )
            return EXIT_OK
        result = answer["reload"]
        print(json.dumps(result, indent=2) if args.json else format_reload(result))
        return EXIT_OK if result.get("outcome") == "ok" else EXIT_FAILED
    if args.action == "stop":
        from swapprof._process import wait_pid_gone

        pid = control_request(run_dir, {"cmd": "status"})["master_pid"]
        control_request(run_dir, {"cmd": "stop"})
        if args.wait and not wait_pid_gone(pid, args.timeout):
            raise ControlError(f"master pid {pid} still runs after {args.timeout:g} s")
        print("stopped" if args.wait else "stopping")
        return EXIT_OK
    return EXIT_USAGE


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swapprof.telemetry._report import load_upgrades, render_html, render_text

    upgrades = load_upgrades(_run_dir(args))
    if args.last:
        upgrades = upgrades[-args.last :]
    print(render_text(upgrades))
    if args.html:
        Path(args.html).write_text(render_html(upgrades))
        print(f"wrote {args.html}")
    return EXIT_OK


def format_reload(result: dict[str, Any]) -> str:
    head = f"reload {result.get('id')} in generation {result.get('generation')}: {result.get('outcome')}"
    if result.get("outcome") != "ok":
        return f"{head} ({result.get('error')})"
    return (
        f"{head}, {', '.join(result.get('modules', []))} in {result.get('duration_ms', 0):.1f} ms; retained "
        f"{result.get('retained_bytes')} B; leaking={result.get('leaking')} "
        f"({result.get('bytes_per_reload', 0):.0f} B/reload over {result.get('reloads')}), "
        f"stale versions {result.get('stale_versions')}"
    )


def format_upgrade(record: dict[str, Any]) -> str:
    phases = "  ".join(f"{name} {ms:7.1f} ms" for name, ms in record.get("phases_ms", {}).items())
    head = f"upgrade {record.get('id')}: {record.get('outcome')}"
    if record.get("outcome") != "success":
        head += f" ({record.get('reason')}: {record.get('detail')})"
    how = record.get("spawn_mode", "exec")
    if how == "fork":
        how = "fork of the zygote" + (", from the waiting spare" if record.get("spare") else "")
    if record.get("zygote_error"):
        how += f" (zygote: {record['zygote_error']})"
    lines = [
        head,
        f"  generation {record.get('old_generation')} -> {record.get('new_generation')}, started by {how}",
        f"  {phases}",
    ]
    if record.get("time_to_ready_ms") is not None:
        lines.append(
            f"  time_to_ready {record['time_to_ready_ms']:.1f} ms, upgrade_total "
            f"{record.get('upgrade_total_ms') or 0:.1f} ms, service_gap {record.get('service_gap_ms') or 0:.1f} ms"
        )
    if record.get("coalesced"):
        lines.append(f"  coalesced {record['coalesced']} further request(s)")
    if record.get("tail"):
        lines.append("  last output of the new generation:")
        lines.extend(f"  | {line}" for line in record["tail"])
    return "\n".join(lines)


def format_status(status: dict[str, Any]) -> str:
    lines = [
        f"master pid {status['master_pid']}, up {status['uptime_s']:.0f} s, listening on {', '.join(status['addresses'])}",
        f"{'GEN':>4} {'PID':>8} {'STATE':<9} {'UPTIME':>9} {'CONNS':>6} {'FDS':>5}",
    ]
    for gen in status["generations"]:
        fds = "-" if gen["fds"] is None else str(gen["fds"])
        lines.append(
            f"{gen['generation']:>4} {gen['pid']:>8} {gen['state']:<9} {gen['uptime_s']:>8.1f}s "
            f"{gen['connections']:>6} {fds:>5}"
        )
    zygote = status.get("zygote")
    if zygote:
        spare = f"spare pid {zygote['spare_pid']} waiting" if zygote.get("spare_pid") else "no spare waiting"
        lines.append(f"zygote {zygote['serial']} pid {zygote['pid']}; {spare}")
    totals = ", ".join(f"{k}={v}" for k, v in sorted(status["upgrades_total"].items())) or "none"
    lines.append(f"upgrades: {totals}; forced kills {status['forced_kills']}")
    return "\n".join(lines)
