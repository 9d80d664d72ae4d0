"""``swapprof serve`` and ``swapprof ctl``: parsers and runners over the ``swapprof.server`` façade.

``swapprof.cli`` calls ``add_parser`` (both subcommands) and ``run``; errors are raised
(ConfigError: exit 2, NotRunningError and other SwapprofError: exit 1) and turned into exit
codes there. Exit 1 is also returned when ``ctl upgrade --wait`` rolled back or a reload failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from swapprof._argtypes import Subparsers
from swapprof._argtypes import count as _count
from swapprof._argtypes import run_dir as _run_dir
from swapprof._argtypes import seconds as _seconds
from swapprof._errors import ConfigError, ControlError, StartupError, UpgradeError
from swapprof._process import wait_pid_gone
from swapprof._vocabulary import REASON_APP_INVALID, SUCCESS
from swapprof.server._cli_format import format_reload, format_status, format_upgrade
from swapprof.server._stack import HTTPS, INTERFACES, LOOPS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Subparsers) -> None:
    """Add ``serve`` and ``ctl`` (with its actions) to ``swapprof``'s subparsers."""
    serve = subparsers.add_parser("serve", help="run the reference hot-restart server")
    serve.add_argument(
        "app",
        metavar="MODULE:APP",
        help="the ASGI or WSGI app, e.g. swapprof.server.demo:app or mysite.wsgi:application",
    )
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
    serve.add_argument(
        "--exit-grace",
        type=_seconds,
        metavar="S",
        help="how long a drained generation may take to exit (lifespan shutdown, telemetry flush) before SIGKILL (default 5)",
    )
    serve.add_argument("--probe-path", metavar="PATH", help="app path the self-probe must get a 2xx from")
    serve.add_argument(
        "--interface",
        choices=INTERFACES,
        help="app interface: asgi, wsgi, or auto (told from the app's signature; the default)",
    )
    serve.add_argument(
        "--threads",
        type=_count,
        metavar="N",
        help="threads running a WSGI app's requests (the WSGI bridge's pool; default 10)",
    )
    serve.add_argument(
        "--workers",
        type=workers_arg,
        metavar="N|auto",
        help="worker processes per generation on the same listeners (default 1; auto = one per CPU)",
    )
    serve.add_argument(
        "--loop",
        choices=LOOPS,
        help="event loop: asyncio, uvloop, or auto (uvloop when installed), as uvicorn's",
    )
    serve.add_argument(
        "--http",
        choices=HTTPS,
        help="HTTP parser: h11, httptools, or auto (httptools when installed), as uvicorn's",
    )
    serve.add_argument(
        "--preload",
        metavar="PKG[,PKG...]|auto",
        help="start a zygote that imports these packages once; upgrades fork it (millisecond switch); "
        "auto: also what the serving generation imported that is not app code, learned",
    )
    serve.add_argument(
        "--no-spare",
        dest="spare",
        action="store_false",
        default=None,
        help="with --preload: do not keep a generation forked and warmed ahead of the next upgrade",
    )
    serve.add_argument(
        "--no-fork-workers",
        dest="fork_workers",
        action="store_false",
        default=None,
        help="without --preload, with --workers > 1: exec every worker on its own (by default one "
        "fresh interpreter imports the app and the workers are its forks)",
    )
    serve.add_argument(
        "--debug-bind",
        metavar="HOST:PORT",
        help="master's /metrics and /debug/swapprof/* (default 127.0.0.1:0; '' turns it off)",
    )
    serve.add_argument(
        "--debug-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on debug routes (visible in ps: prefer --debug-token-file)",
    )
    serve.add_argument(
        "--debug-token-file",
        metavar="FILE",
        help="read the debug token from FILE (also SWAPPROF_DEBUG_TOKEN_FILE; or SWAPPROF_DEBUG_TOKEN)",
    )
    serve.add_argument(
        "--debug-insecure-app-routes",
        action="store_true",
        default=None,
        help="serve /metrics and /debug/* on the app's port to loopback clients without a token "
        "(unsafe behind a reverse proxy on the same host; off by default, a token turns them on)",
    )
    serve.add_argument(
        "--otel-global",
        action="store_true",
        default=None,
        help="let swapprof's OTel SDK become the app's global provider (its spans go to OTLP, never "
        "to the span file; a provider the app set is kept)",
    )
    serve.add_argument(
        "--app-metrics-path",
        metavar="PATH",
        help="path each generation serves its own metrics on (default /metrics; '' turns it off)",
    )
    _add_bake(serve)

    ctl = subparsers.add_parser("ctl", help="talk to a running master")
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


def _add_bake(serve: argparse.ArgumentParser) -> None:
    """The bake window and its verdict rules (docs/server.md#the-bake-window)."""
    bake = serve.add_argument_group("bake window (judge a switch by the new code's own requests)")
    for flag, kind, metavar, text in (
        ("--bake-window", float, "S", "after the switch, judge the new generation's requests for S seconds "
         "with the old one parked, and roll back to it on a regression (default 0 = off)"),
        ("--bake-min-requests", int, "N", "requests each window needs before any verdict (default 50)"),
        ("--bake-alpha", float, "P", "significance level of the last look; early looks use P/10 (default 0.01)"),
        ("--bake-error-margin", float, "R", "fail only if the new error ratio exceeds the old one by more "
         "than R, significantly (default 0.01)"),
        ("--bake-latency-margin", float, "R", "fail only if the new median latency exceeds the old one by "
         "more than this fraction (default 0.2)..."),
        ("--bake-latency-floor", float, "MS", "... and by at least MS milliseconds (default 2)"),
    ):  # fmt: skip
        dest = "bake_latency_floor_ms" if flag == "--bake-latency-floor" else flag[2:].replace("-", "_")
        bake.add_argument(flag, type=kind, metavar=metavar, help=text, dest=dest)
    bake.add_argument(
        "--bake-low-traffic",
        choices=("pass", "extend"),
        help="too little traffic for a verdict when the window ends: pass (default), or extend it "
        "(up to 3 more windows); recorded either way",
    )


def workers_arg(text: str) -> int:
    """argparse type of --workers (serve, demo): N or auto, resolved."""
    from swapprof.server._config import workers_count

    try:
        return workers_count(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    return run_serve(args) if args.command == "serve" else run_ctl(args)


def run_serve(args: argparse.Namespace) -> int:
    from swapprof.server import ServerConfig, serve  # on use: the master's modules cost ~35 ms

    config = ServerConfig.from_env(
        args.app,
        binds=tuple(args.bind),
        uds=args.uds,
        app_dir=args.app_dir,
        run_dir=args.run_dir,
        ready_timeout=args.ready_timeout,
        drain_timeout=args.drain_timeout,
        drain_grace=args.drain_grace,
        exit_grace=args.exit_grace,
        probe_path=args.probe_path,
        debug_bind=args.debug_bind,
        debug_token=_debug_token(args),
        debug_insecure_app_routes=args.debug_insecure_app_routes,
        app_metrics_path=args.app_metrics_path,
        interface=args.interface,
        threads=args.threads,
        workers=args.workers,
        loop=args.loop,
        http=args.http,
        otel_global=args.otel_global,
        spare=args.spare,
        fork_workers=args.fork_workers,
        bake_window=args.bake_window,
        bake_min_requests=args.bake_min_requests,
        bake_alpha=args.bake_alpha,
        bake_error_margin=args.bake_error_margin,
        bake_latency_margin=args.bake_latency_margin,
        bake_latency_floor_ms=args.bake_latency_floor_ms,
        bake_low_traffic=args.bake_low_traffic,
        preload=tuple(p.strip() for p in args.preload.split(",") if p.strip())
        if args.preload is not None
        else None,
    )
    if config.otel_global:
        from swapprof.telemetry._settings import otel_global_unexported

        if (unexported := otel_global_unexported(os.environ)) is not None:
            print(f"swapprof: warning: {unexported}", file=sys.stderr)
    import asyncio

    try:
        return asyncio.run(serve(config))
    except StartupError as exc:
        if exc.record.get("reason") == REASON_APP_INVALID:
            # the app object is not an app: a usage error, said in the one line the generation gave
            raise ConfigError(str(exc.record.get("detail") or exc)) from None
        raise


def _debug_token(args: argparse.Namespace) -> str | None:
    """``--debug-token-file`` (or its env var) read, else ``--debug-token`` with a warning: a
    command line is readable by every local user. None: ServerConfig then reads the env var."""
    from swapprof.server._config import ENV_DEBUG_TOKEN_FILE

    path = args.debug_token_file or os.environ.get(ENV_DEBUG_TOKEN_FILE)
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--debug-token-file {path!r}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"--debug-token-file {path!r} is empty")
        return token
    if args.debug_token:
        print(
            "swapprof: warning: --debug-token on the command line is visible to every local user "
            "(ps); use --debug-token-file or SWAPPROF_DEBUG_TOKEN",
            file=sys.stderr,
        )
    given: str | None = args.debug_token
    return given


def run_ctl(args: argparse.Namespace) -> int:
    from swapprof.server import control_request

    run_dir = _run_dir(args.run_dir)
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
        if record.get("outcome") != SUCCESS:
            reason = (
                f"{record.get('reason')}: {record.get('detail')}"
                if record.get("detail")
                else record.get("reason")
            )
            raise UpgradeError(f"upgrade {record.get('id')} {record.get('outcome')} ({reason})", record)
        return EXIT_OK
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
        pid = control_request(run_dir, {"cmd": "status"})["master_pid"]
        control_request(run_dir, {"cmd": "stop"})
        if args.wait and not wait_pid_gone(pid, args.timeout):
            raise ControlError(f"master pid {pid} still runs after {args.timeout:g} s")
        print("stopped" if args.wait else "stopping")
        return EXIT_OK
    return EXIT_USAGE
