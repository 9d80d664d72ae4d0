"""Entry point of one generation: ``python -m swapprof.server._worker``.

Configured by its environment (set by the master): LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES,
NOTIFY_SOCKET, SWAPPROF_GENERATION, SWAPPROF_APP, SWAPPROF_APP_DIR, SWAPPROF_PROBE_PATH,
SWAPPROF_READY_TIMEOUT, SWAPPROF_DRAIN_TIMEOUT, SWAPPROF_DRAIN_GRACE, SWAPPROF_RUN_DIR,
SWAPPROF_APP_METRICS_PATH, TRACEPARENT (the upgrade that creates this generation).

Stages reported to the master over sd_notify, each with SWAPPROF_T (CLOCK_MONOTONIC ns, the
same clock in every process): started, imported, READY=1, stopped_accepting, drained; or
SWAPPROF_STAGE=failed with SWAPPROF_REASON and STATUS. SWAPPROF_SPANS lists the phase spans
this generation has flushed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from swapprof.server._notify import Notifier

if TYPE_CHECKING:
    import asyncio

EXIT_IMPORT = 3
EXIT_PROBE = 4
EXIT_LIFESPAN = 5
EXIT_NO_SOCKETS = 6
EXIT_ABANDONED = 7


def _now() -> int:
    return time.monotonic_ns()


def main(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """Run one generation; ``loop``: an event loop made (and warmed) ahead, by a spare."""
    notifier = Notifier.from_env()
    os.environ.pop("NOTIFY_SOCKET", None)  # the app must not talk to the master by accident
    generation = int(os.environ.get("SWAPPROF_GENERATION", "1"))
    started = _now()
    try:
        notifier.deliver(SWAPPROF_STAGE="started", SWAPPROF_T=started, MAINPID=os.getpid())
    except (ConnectionRefusedError, FileNotFoundError):
        # Nobody listens for this generation: its master gave it up (say, a zygote's answer
        # that came too late). Serving unmanaged on the shared listeners would be worse.
        print(
            f"swapprof: generation {generation}: no master listens on NOTIFY_SOCKET; exiting", file=sys.stderr
        )
        return EXIT_ABANDONED
    except OSError:
        pass  # best effort, as sd_notify
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master orchestrates; Ctrl-C reaches it

    from swapprof.server._fds import inherit
    from swapprof.server._gen_telemetry import GenerationTelemetry

    telemetry = GenerationTelemetry(generation, notifier)
    listeners = inherit(os.environ)
    if not listeners:
        notifier.send(SWAPPROF_STAGE="failed", SWAPPROF_REASON="no_sockets", STATUS="no LISTEN_FDS passed")
        return EXIT_NO_SOCKETS
    import swapprof.server._serving  # noqa: F401 - the server stack (uvicorn) counts as import

    app_dir = os.environ.get("SWAPPROF_APP_DIR")
    if app_dir:
        sys.path.insert(0, app_dir)
    try:
        app = import_app(os.environ["SWAPPROF_APP"])
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        failed = _now()
        telemetry.record(telemetry.traceparent, [("import", started, failed, _one_line(exc))])
        telemetry.shutdown()
        notifier.send(SWAPPROF_STAGE="failed", SWAPPROF_REASON="import_error", STATUS=_one_line(exc))
        return EXIT_IMPORT
    imported = _now()
    notifier.send(SWAPPROF_STAGE="imported", SWAPPROF_T=imported)

    import asyncio

    stamps = {"started": started, "imported": imported}
    serve = _serve(app, [s for _, s in listeners], generation, notifier, telemetry, stamps)
    with asyncio.Runner(loop_factory=None if loop is None else lambda: loop) as runner:
        return runner.run(serve)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


def import_app(spec: str) -> object:
    import importlib

    module_name, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


async def _serve(
    app: Any, sockets: list[Any], generation: int, notifier: Notifier, telemetry: Any, stamps: dict[str, int]
) -> int:
    import asyncio

    from swapprof.server._probe import ProbeFailed
    from swapprof.server._serving import GenerationServer, LifespanFailed

    env = os.environ
    ready_timeout = float(env.get("SWAPPROF_READY_TIMEOUT", "30"))
    drain_timeout = float(env.get("SWAPPROF_DRAIN_TIMEOUT", "30"))
    drain_grace = float(env.get("SWAPPROF_DRAIN_GRACE", "1"))
    server = GenerationServer(
        app,
        sockets,
        generation,
        env.get("SWAPPROF_PROBE_PATH") or None,
        metrics_path=env.get("SWAPPROF_APP_METRICS_PATH", "/metrics") or None,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _watch_lifeline(loop, stop)
    from swapprof.server._gen_reload import GenerationReloader

    reloader = GenerationReloader(env["SWAPPROF_APP"], server.middleware, notifier, generation)
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.call_soon(_reload, reloader))
    server.middleware.debug_routes["reloads"] = reloader.snapshot
    server.middleware.debug_routes["gc"] = telemetry.gc_snapshot
    imported = stamps["imported"]
    try:
        await server.start()
        attempts = await server.self_probe(ready_timeout)
    except (LifespanFailed, ProbeFailed) as exc:
        reason = "lifespan_failed" if isinstance(exc, LifespanFailed) else "probe_failed"
        print(f"swapprof: generation {generation} {reason}: {exc}", file=sys.stderr, flush=True)
        phases = [("import", stamps["started"], imported, None), ("ready", imported, _now(), _one_line(exc))]
        await loop.run_in_executor(None, telemetry.record, telemetry.traceparent, phases)
        await loop.run_in_executor(None, telemetry.shutdown)
        notifier.send(SWAPPROF_STAGE="failed", SWAPPROF_REASON=reason, STATUS=_one_line(exc))
        return EXIT_LIFESPAN if reason == "lifespan_failed" else EXIT_PROBE
    ready = _now()
    notifier.send(READY=1, SWAPPROF_STAGE="ready", SWAPPROF_T=ready, SWAPPROF_PROBE_ATTEMPTS=attempts)
    reporter = asyncio.create_task(_report_connections(server, notifier))
    phases = [("import", stamps["started"], imported, None), ("ready", imported, ready, None)]
    after_ready = loop.run_in_executor(None, telemetry.record, telemetry.traceparent, phases)
    setup = loop.run_in_executor(None, telemetry.setup)  # also when there is no trace to continue
    await stop.wait()
    term = _now()
    await server.stop_accepting()
    stopped = _now()
    notifier.send(
        SWAPPROF_STAGE="stopped_accepting", SWAPPROF_T=stopped, SWAPPROF_CONNECTIONS=server.connections
    )
    counts = await server.drain(drain_grace, drain_timeout)
    reporter.cancel()
    drained = _now()
    notifier.send(
        SWAPPROF_STAGE="drained",
        SWAPPROF_T=drained,
        **{f"SWAPPROF_{key.upper()}": value for key, value in counts.items()},
    )
    try:
        await asyncio.wait_for(server.shutdown_lifespan(), timeout=max(1.0, drain_timeout / 10))
    except Exception as exc:
        print(f"swapprof: lifespan shutdown: {exc!r}", file=sys.stderr, flush=True)
    await asyncio.gather(after_ready, setup, return_exceptions=True)
    traceparent, ready_ns = telemetry.handoff()
    phases = [
        ("switch", ready_ns or term, stopped, None),
        ("drain", stopped, drained, None),
        ("exit", drained, _now(), None),
    ]
    await loop.run_in_executor(None, lambda: telemetry.record(traceparent, phases, **counts))
    await loop.run_in_executor(None, telemetry.shutdown)
    return 0


def _reload(reloader: Any) -> None:
    try:
        result = reloader.reload()
    except Exception as exc:  # a reload must never take the generation down
        print(f"swapprof: reload failed: {exc!r}", file=sys.stderr, flush=True)
        return
    print(f"swapprof: reload {result}", file=sys.stderr, flush=True)


def _watch_lifeline(loop: Any, stop: Any) -> None:
    """A generation forked by the zygote has no parent-death signal tied to the master; it
    holds the read end of a pipe only the master writes to: EOF means the master is gone."""
    text = os.environ.get("SWAPPROF_LIFELINE_FD")
    if not text or not text.isdigit():
        return
    fd = int(text)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(fd, readable)


async def _report_connections(server: Any, notifier: Notifier) -> None:
    import asyncio

    last = -1
    while True:
        count = server.connections
        if count != last:
            notifier.send(SWAPPROF_CONNECTIONS=count)
            last = count
        await asyncio.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main())
