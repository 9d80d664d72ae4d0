"""Entry point of one generation: ``python -m swapprof.server.generation``.

Configured by its environment, as ``_contract`` describes it (the master writes it; the
listeners come as LISTEN_FDS, the upgrade's trace context as TRACEPARENT). It reports its
stages to the master over sd_notify (``_contract``: started, imported, ready, stopped_accepting,
drained, or failed with a reason), each stamped with CLOCK_MONOTONIC, one clock for all processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from swapprof._vocabulary import DRAIN, EXIT, IMPORT, READY, SWITCH
from swapprof.server import _contract as c
from swapprof.server._contract import GenerationContract
from swapprof.server._notify import Notifier

if TYPE_CHECKING:
    import asyncio


def _now() -> int:
    return time.monotonic_ns()


def main(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """Run one generation; ``loop``: an event loop made (and warmed) ahead, by a spare."""
    notifier = Notifier.from_env()
    os.environ.pop(c.ENV_NOTIFY_SOCKET, None)  # the app must not talk to the master by accident
    generation = int(os.environ.get(c.ENV_GENERATION, "1"))
    worker = c.worker_index()
    contract = GenerationContract.from_env()
    # forked from an app zygote (``zygote._app``): the app was imported there, once for all N
    forked_started, _, forked_imported = os.environ.pop(c.ENV_IMPORT_STAMPS, "").partition(":")
    started = int(forked_started) if forked_started.isdigit() else _now()
    try:
        notifier.deliver(
            **{c.F_STAGE: c.STAGE_STARTED, c.F_T: started, c.F_WORKER: worker}, MAINPID=os.getpid()
        )
    except (ConnectionRefusedError, FileNotFoundError):
        # Nobody listens for this generation: its master gave it up (say, a zygote's answer
        # that came too late). Serving unmanaged on the shared listeners would be worse.
        print(
            f"swapprof: generation {generation}: no master listens on NOTIFY_SOCKET; exiting", file=sys.stderr
        )
        return c.EXIT_ABANDONED
    except OSError:
        pass  # best effort, as sd_notify
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master orchestrates; Ctrl-C reaches it

    from swapprof.server._fds import inherit
    from swapprof.server.generation._telemetry import GenerationTelemetry

    telemetry = GenerationTelemetry(generation, notifier, worker=worker)
    listeners = inherit(os.environ)
    if not listeners:
        _failed(notifier, c.FAILURE_NO_SOCKETS, "no LISTEN_FDS passed")
        return c.EXIT_NO_SOCKETS
    import swapprof.server.generation._serving  # noqa: F401 - the server stack (uvicorn) counts as import

    if contract.app_dir:
        sys.path.insert(0, contract.app_dir)
    from swapprof.server.generation._app import AppInvalid, check_app, import_app

    try:
        app = import_app(contract.app)
        interface = check_app(app, contract.app, contract.interface)
    except AppInvalid as exc:
        print(
            f"swapprof: generation {generation} {c.FAILURE_APP_INVALID}: {exc}", file=sys.stderr, flush=True
        )
        telemetry.record(telemetry.traceparent, [(IMPORT, started, _now(), str(exc))], last=True)
        _failed(notifier, c.FAILURE_APP_INVALID, str(exc))
        return c.EXIT_APP_INVALID
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        failed = _now()
        telemetry.record(telemetry.traceparent, [(IMPORT, started, failed, _one_line(exc))], last=True)
        _failed(notifier, c.FAILURE_IMPORT, _one_line(exc))
        return c.EXIT_IMPORT
    imported = int(forked_imported) if forked_imported.isdigit() else _now()
    notifier.send(**{c.F_STAGE: c.STAGE_IMPORTED, c.F_T: imported})

    import asyncio

    from swapprof.server._stack import loop_factory, loop_name, resolve_loop

    if loop is not None and loop_name(loop) != resolve_loop(contract.loop):
        loop.close()  # a spare warmed on another loop than this contract's: start cold
        loop = None
    factory = loop_factory(contract.loop) if loop is None else lambda: loop
    stamps = {c.STAGE_STARTED: started, c.STAGE_IMPORTED: imported}
    sockets = [s for _, s in listeners]
    serve = _serve(app, interface, sockets, generation, contract, notifier, telemetry, stamps)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


def _failed(notifier: Notifier, reason: str, status: str) -> None:
    notifier.send(**{c.F_STAGE: c.STAGE_FAILED, c.F_REASON: reason}, STATUS=status)


async def _serve(
    app: Any,
    interface: str,
    sockets: list[Any],
    generation: int,
    contract: GenerationContract,
    notifier: Notifier,
    telemetry: Any,
    stamps: dict[str, int],
) -> int:
    import asyncio

    from swapprof.server.generation._probe import ProbeFailed
    from swapprof.server.generation._serving import GenerationServer, LifespanFailed

    ready_timeout, drain_timeout = contract.ready_timeout, contract.drain_timeout
    server = GenerationServer(
        app,
        sockets,
        generation,
        contract.probe_path,
        metrics_path=contract.app_metrics_path or None,
        debug_token=contract.debug_token,
        insecure_app_routes=contract.insecure_app_routes,
        interface=interface,
        threads=contract.threads,
        http=contract.http,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _watch_lifeline(loop, stop)
    from swapprof.server.generation._reload import GenerationReloader

    reloader = GenerationReloader(contract, server.middleware, notifier, generation)
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.call_soon(_reload, reloader))
    server.middleware.debug_routes["reloads"] = reloader.snapshot
    server.middleware.debug_routes["gc"] = telemetry.gc_snapshot
    imported = stamps[c.STAGE_IMPORTED]
    proving = asyncio.ensure_future(_prove(server, ready_timeout))
    stopped_early = asyncio.ensure_future(stop.wait())
    await asyncio.wait({proving, stopped_early}, return_when=asyncio.FIRST_COMPLETED)
    stopped_early.cancel()
    failure: tuple[str, str] | None = None
    if not proving.done():  # the master gave this generation up (another worker failed)
        proving.cancel()
        with contextlib.suppress(asyncio.CancelledError, LifespanFailed, ProbeFailed):
            await proving
        failure = ("", "stopped by the master before it was ready")
    elif (exc := proving.exception()) is not None:
        if not isinstance(exc, LifespanFailed | ProbeFailed):
            raise exc
        reason = c.FAILURE_LIFESPAN if isinstance(exc, LifespanFailed) else c.FAILURE_PROBE
        print(f"swapprof: generation {generation} {reason}: {exc}", file=sys.stderr, flush=True)
        _failed(notifier, reason, _one_line(exc))  # at once: the master starts the rollback
        failure = (reason, _one_line(exc))
    if failure is not None:
        reason, status = failure
        # serve to the end whatever the probe's claims took on the way (nothing else was accepted)
        await server.stop_accepting()
        await server.drain(contract.drain_grace, drain_timeout)
        started_up = getattr(server.lifespan, "startup_event", None)
        if reason != c.FAILURE_LIFESPAN and started_up is not None and started_up.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.shutdown_lifespan(), timeout=max(1.0, drain_timeout / 10))
        phases = [(IMPORT, stamps[c.STAGE_STARTED], imported, None), (READY, imported, _now(), status)]
        await loop.run_in_executor(None, lambda: telemetry.record(telemetry.traceparent, phases, last=True))
        return {c.FAILURE_LIFESPAN: c.EXIT_LIFESPAN, c.FAILURE_PROBE: c.EXIT_PROBE}.get(reason, 0)
    attempts = proving.result()
    ready = _now()
    from swapprof.server._stack import loop_name

    serving = {c.F_INTERFACE: interface, c.F_LOOP: loop_name(loop), c.F_HTTP: server.http}
    notifier.send(
        READY=1, **{c.F_STAGE: c.STAGE_READY, c.F_T: ready, c.F_PROBE_ATTEMPTS: attempts}, **serving
    )
    reporter = asyncio.create_task(_report_connections(server, notifier))
    phases = [(IMPORT, stamps[c.STAGE_STARTED], imported, None), (READY, imported, ready, None)]
    after_ready = loop.run_in_executor(None, telemetry.record, telemetry.traceparent, phases)
    setup = loop.run_in_executor(None, telemetry.setup)  # also when there is no trace to continue
    from swapprof.server.generation._private import endpoint

    private = endpoint(contract.run_dir, generation, c.worker_index(), server.middleware.debug_routes)
    if private is not None:
        await private.start()  # the master's way in: /metrics, /debug/* (after READY: off the switch)
    reports = [_report_pages(loop), _report_imports(loop, contract, generation, notifier)]
    from swapprof.server.generation._parking import serve_until_stopped

    retired = await serve_until_stopped(server, contract, notifier, stop, telemetry)
    reporter.cancel()
    try:
        await asyncio.wait_for(server.shutdown_lifespan(), timeout=max(1.0, drain_timeout / 10))
    except Exception as exc:
        print(f"swapprof: lifespan shutdown: {exc!r}", file=sys.stderr, flush=True)
    reports.append(_report_imports(loop, contract, generation, notifier))  # what serving added
    await asyncio.gather(after_ready, setup, *filter(None, reports), return_exceptions=True)
    if private is not None:
        await private.finish()  # the master's last read of this worker's counters
    traceparent, ready_ns = telemetry.handoff()
    phases = [
        (SWITCH, ready_ns or retired.term, retired.stopped, None),
        (DRAIN, retired.stopped, retired.drained, None),
        (EXIT, retired.exit_from, _now(), None),
    ]
    counts = retired.counts
    await loop.run_in_executor(None, lambda: telemetry.record(traceparent, phases, last=True, **counts))
    return 0


async def _prove(server: Any, ready_timeout: float) -> int:
    """The app's lifespan startup, then the self-probe; then, proven, accept clients."""
    await server.start()
    attempts: int = await server.self_probe(ready_timeout)
    await server.serve()
    return attempts


def _report_imports(loop: Any, contract: GenerationContract, generation: int, notifier: Notifier) -> Any:
    """With ``--preload auto``: worker 0 lists its non-app modules for the master, in a thread."""
    if not contract.report_imports or c.worker_index() != 0:
        return None
    from swapprof.server.generation._imported import report

    return loop.run_in_executor(None, report, contract, generation, 0, notifier)


def _report_pages(loop: Any) -> Any:
    """Forked from a zygote: worker 0 lists the pages it copied from it, for the next spare to
    copy ahead (``_cow``), in a thread."""
    from swapprof.server import _cow

    if _cow.report_to is None or c.worker_index() != 0:
        return None
    return loop.run_in_executor(None, _cow.report, _cow.report_to)


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
    text = os.environ.get(c.ENV_LIFELINE_FD)
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
            notifier.send(**{c.F_CONNECTIONS: count})
            last = count
        await asyncio.sleep(0.25)
