"""What crosses from the master into a generation (and a zygote): one place for every name.

Environment of a generation process (the master writes it with ``GenerationContract.to_env``,
the generation reads it with ``GenerationContract.from_env``)::

    SWAPPROF_APP=MODULE:ATTR        SWAPPROF_APP_DIR=DIR            SWAPPROF_RUN_DIR=DIR
    SWAPPROF_READY_TIMEOUT=S        SWAPPROF_DRAIN_TIMEOUT=S        SWAPPROF_DRAIN_GRACE=S
    SWAPPROF_PROBE_PATH=/PATH       SWAPPROF_APP_METRICS_PATH=/PATH SWAPPROF_DEBUG_TOKEN=T
    SWAPPROF_INTERFACE=auto|asgi|wsgi  SWAPPROF_THREADS=N (WSGI pool)
    SWAPPROF_WSGI_ADAPTER=swapprof|a2wsgi (inherited from the master's environment, not set by it)
    SWAPPROF_LOOP=auto|asyncio|uvloop  SWAPPROF_HTTP=auto|h11|httptools   (``_stack``)
    SWAPPROF_MASTER_PID=PID         SWAPPROF_GENERATION=N (per spawn)
    SWAPPROF_WORKER=I               (per spawn: this process's index in its generation, 0..N-1)
    SWAPPROF_LIFELINE_FD=FD         (forked generations: EOF = the master is gone)
    SWAPPROF_BAKE_WINDOW=S          (> 0: count requests and ship them, ``_accounting``; park on
                                    SIGNAL_PARK, resume on SIGNAL_RESUME)
    LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, NOTIFY_SOCKET, TRACEPARENT / TRACESTATE

    SWAPPROF_REPORT_IMPORTS=1       (--preload auto: worker 0 reports the modules it imported)

A zygote also gets ``SWAPPROF_ZYGOTE_FD``, ``SWAPPROF_PRELOAD``, ``SWAPPROF_PRELOAD_BASE`` and,
with ``--preload auto``, ``SWAPPROF_PRELOAD_LEARNED`` (a file: the learned modules to import
one at a time, each checked); the one-shot app zygote of an exec'd generation with N workers
gets ``SWAPPROF_PRELOAD_APP=1`` instead, and its forks ``SWAPPROF_IMPORT_STAMPS``.

Back from the generation, over sd_notify (``_notify``): ``SWAPPROF_STAGE`` with a
CLOCK_MONOTONIC stamp ``SWAPPROF_T`` -- ``started``, ``imported``, ``ready`` (with READY=1),
``stopped_accepting``, ``drained``; ``started`` also says ``SWAPPROF_WORKER`` (its index); READY also says what it runs: ``SWAPPROF_INTERFACE``
(asgi|wsgi), ``SWAPPROF_LOOP`` (asyncio|uvloop), ``SWAPPROF_HTTP`` (h11|httptools); or ``failed`` with ``SWAPPROF_REASON`` (``FAILURE_*``) and
STATUS. ``SWAPPROF_SPANS`` names the phase spans it flushed, ``SWAPPROF_CONNECTIONS`` its
open connections, ``SWAPPROF_RELOAD`` an in-place reload's result (JSON); stage ``imports`` with
``SWAPPROF_IMPORTS`` (a count) says the modules it imported are in its run-dir file
(``generation._imported``), sent after READY and after the drain. With a bake window:
``SWAPPROF_REQUESTS`` one interval of request accounting (``_accounting``); a parked generation
says ``parked`` (drained, still alive) instead of ``drained``, then ``resumed`` when told to
accept again, or ``drained`` just before it exits. Exit codes: ``EXIT_*``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from swapprof._vocabulary import ENV_RUN_DIR as ENV_RUN_DIR  # re-exported: part of the contract
from swapprof.telemetry._settings import ENV_OTEL_GLOBAL as ENV_OTEL_GLOBAL
from swapprof.telemetry._settings import ENV_TELEMETRY as ENV_TELEMETRY
from swapprof.telemetry._settings import ENV_TRACEPARENT as ENV_TRACEPARENT
from swapprof.telemetry._settings import ENV_TRACESTATE as ENV_TRACESTATE
from swapprof.telemetry._settings import telemetry_enabled as telemetry_enabled

# ---------------------------------------------------------------- environment names
ENV_APP: Final = "SWAPPROF_APP"
ENV_APP_DIR: Final = "SWAPPROF_APP_DIR"
ENV_READY_TIMEOUT: Final = "SWAPPROF_READY_TIMEOUT"
ENV_DRAIN_TIMEOUT: Final = "SWAPPROF_DRAIN_TIMEOUT"
ENV_DRAIN_GRACE: Final = "SWAPPROF_DRAIN_GRACE"
ENV_PROBE_PATH: Final = "SWAPPROF_PROBE_PATH"
ENV_APP_METRICS_PATH: Final = "SWAPPROF_APP_METRICS_PATH"
ENV_DEBUG_TOKEN: Final = "SWAPPROF_DEBUG_TOKEN"
ENV_DEBUG_INSECURE_APP_ROUTES: Final = "SWAPPROF_DEBUG_INSECURE_APP_ROUTES"
ENV_INTERFACE: Final = "SWAPPROF_INTERFACE"
ENV_THREADS: Final = "SWAPPROF_THREADS"
ENV_WSGI_ADAPTER: Final = "SWAPPROF_WSGI_ADAPTER"  # swapprof|a2wsgi: benchmarks compare the two
ENV_LOOP: Final = "SWAPPROF_LOOP"
ENV_HTTP: Final = "SWAPPROF_HTTP"
ENV_MASTER_PID: Final = "SWAPPROF_MASTER_PID"
ENV_GENERATION: Final = "SWAPPROF_GENERATION"
ENV_WORKER: Final = "SWAPPROF_WORKER"
ENV_LIFELINE_FD: Final = "SWAPPROF_LIFELINE_FD"
ENV_ZYGOTE_FD: Final = "SWAPPROF_ZYGOTE_FD"
ENV_PRELOAD: Final = "SWAPPROF_PRELOAD"
ENV_PRELOAD_BASE: Final = "SWAPPROF_PRELOAD_BASE"
ENV_PRELOAD_LEARNED: Final = "SWAPPROF_PRELOAD_LEARNED"
ENV_PRELOAD_APP: Final = "SWAPPROF_PRELOAD_APP"
"""=1: a one-shot zygote that imports the app itself, for one exec'd generation's N workers."""
ENV_IMPORT_STAMPS: Final = "SWAPPROF_IMPORT_STAMPS"
"""``STARTED:IMPORTED`` (CLOCK_MONOTONIC ns): a worker forked after its app zygote imported the
app reports that import as its own ``started`` and ``imported``."""
ENV_REPORT_IMPORTS: Final = "SWAPPROF_REPORT_IMPORTS"
PRELOAD_AUTO: Final = "auto"
"""``--preload auto``: the zygote preloads what the serving generation imported (not app code)."""
ENV_BAKE_WINDOW: Final = "SWAPPROF_BAKE_WINDOW"
ENV_LISTEN_FDS: Final = "LISTEN_FDS"
ENV_LISTEN_PID: Final = "LISTEN_PID"
ENV_LISTEN_FDNAMES: Final = "LISTEN_FDNAMES"
ENV_NOTIFY_SOCKET: Final = "NOTIFY_SOCKET"
PYTHONUNBUFFERED: Final = "PYTHONUNBUFFERED"

# ---------------------------------------------------------------- defaults (the only copy)
DEFAULT_READY_TIMEOUT: Final = 30.0
DEFAULT_DRAIN_TIMEOUT: Final = 30.0
DEFAULT_DRAIN_GRACE: Final = 1.0
DEFAULT_APP_METRICS_PATH: Final = "/metrics"
DEFAULT_INTERFACE: Final = "auto"
DEFAULT_THREADS: Final = 10  # the WSGI pool size (a2wsgi's and uvicorn's WSGI default too)
DEFAULT_LOOP: Final = "auto"
DEFAULT_HTTP: Final = "auto"

# ---------------------------------------------------------------- notify fields and stages
F_STAGE: Final = "SWAPPROF_STAGE"
F_T: Final = "SWAPPROF_T"
F_REASON: Final = "SWAPPROF_REASON"
F_SPANS: Final = "SWAPPROF_SPANS"
F_RELOAD: Final = "SWAPPROF_RELOAD"
F_CONNECTIONS: Final = "SWAPPROF_CONNECTIONS"
F_PROBE_ATTEMPTS: Final = "SWAPPROF_PROBE_ATTEMPTS"
F_IMPORTS: Final = "SWAPPROF_IMPORTS"
F_REQUESTS: Final = "SWAPPROF_REQUESTS"
F_WORKER: Final = ENV_WORKER
F_INTERFACE: Final = ENV_INTERFACE
F_LOOP: Final = ENV_LOOP
F_HTTP: Final = ENV_HTTP
F_PREFIX: Final = "SWAPPROF_"

ATTR_WORKER: Final = "swapprof.worker"
"""Span attribute on every phase span a worker records (or the master records for it): its index."""

STAGE_STARTED: Final = "started"
STAGE_IMPORTED: Final = "imported"
STAGE_READY: Final = "ready"
STAGE_STOPPED_ACCEPTING: Final = "stopped_accepting"
STAGE_DRAINED: Final = "drained"
STAGE_FAILED: Final = "failed"
STAGE_IMPORTS: Final = "imports"
"""Not a step of the generation's life: a report it may send more than once (``F_IMPORTS``)."""
STAGE_PARKED: Final = "parked"
STAGE_RESUMED: Final = "resumed"

# How the master parks an old generation for a bake and brings it back (the generation
# installs both after READY). SIGUSR2 parks: stop accepting, drain, stay alive with the app
# loaded and a copy of every listener. Resuming uses a real-time signal: those are queued
# (never merged with a pending one), no one else sends them, and the kernel never does.
SIGNAL_PARK: Final = signal.SIGUSR2
SIGNAL_RESUME: Final = signal.SIGRTMIN + 1

# What a failing generation reports as SWAPPROF_REASON (the master maps them to reason codes).
FAILURE_IMPORT: Final = "import_error"
FAILURE_APP_INVALID: Final = "app_invalid"
FAILURE_PROBE: Final = "probe_failed"
FAILURE_LIFESPAN: Final = "lifespan_failed"
FAILURE_NO_SOCKETS: Final = "no_sockets"

# ---------------------------------------------------------------- exit codes of a generation
EXIT_IMPORT: Final = 3
EXIT_PROBE: Final = 4
EXIT_LIFESPAN: Final = 5
EXIT_NO_SOCKETS: Final = 6
EXIT_ABANDONED: Final = 7
EXIT_APP_INVALID: Final = 8


@dataclass(frozen=True)
class GenerationContract:
    """The settings a generation runs with; the master's config, carried by the environment."""

    app: str
    run_dir: str
    master_pid: int = 0
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    drain_grace: float = DEFAULT_DRAIN_GRACE
    app_dir: str | None = None
    probe_path: str | None = None
    app_metrics_path: str = DEFAULT_APP_METRICS_PATH
    debug_token: str | None = None
    insecure_app_routes: bool = False
    """The app-port debug and metrics routes answer loopback clients without a token."""
    interface: str = DEFAULT_INTERFACE
    threads: int = DEFAULT_THREADS
    loop: str = DEFAULT_LOOP
    http: str = DEFAULT_HTTP
    otel_global: bool = False
    """The generation's SDK also becomes the process-global provider (the app's spans go to OTLP)."""
    report_imports: bool = False
    """Worker 0 reports the non-app modules it imported (``--preload auto`` learns from it)."""
    bake_window: float = 0.0
    """> 0: the master bakes upgrades; the generation counts its requests and can be parked."""

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) less the master's own listener and
        notify variables, plus this contract."""
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith("LISTEN_") and k != ENV_NOTIFY_SOCKET}
        env.update({
            ENV_APP: self.app,
            ENV_RUN_DIR: self.run_dir,
            ENV_MASTER_PID: str(self.master_pid),
            ENV_READY_TIMEOUT: repr(self.ready_timeout),
            ENV_DRAIN_TIMEOUT: repr(self.drain_timeout),
            ENV_DRAIN_GRACE: repr(self.drain_grace),
            ENV_APP_METRICS_PATH: self.app_metrics_path,
            ENV_INTERFACE: self.interface,
            ENV_THREADS: str(self.threads),
            ENV_LOOP: self.loop,
            ENV_HTTP: self.http,
            ENV_OTEL_GLOBAL: "1" if self.otel_global else "0",
            ENV_DEBUG_INSECURE_APP_ROUTES: "1" if self.insecure_app_routes else "0",
            ENV_REPORT_IMPORTS: "1" if self.report_imports else "0",
            ENV_BAKE_WINDOW: repr(self.bake_window),
            PYTHONUNBUFFERED: "1",
        })  # fmt: skip
        for name, value in (
            (ENV_APP_DIR, self.app_dir),
            (ENV_PROBE_PATH, self.probe_path),
            (ENV_DEBUG_TOKEN, self.debug_token),
        ):
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GenerationContract:
        env = os.environ if env is None else env
        return cls(
            app=env[ENV_APP],
            run_dir=env.get(ENV_RUN_DIR, ""),
            master_pid=int(env.get(ENV_MASTER_PID, "0") or 0),
            ready_timeout=float(env.get(ENV_READY_TIMEOUT, DEFAULT_READY_TIMEOUT)),
            drain_timeout=float(env.get(ENV_DRAIN_TIMEOUT, DEFAULT_DRAIN_TIMEOUT)),
            drain_grace=float(env.get(ENV_DRAIN_GRACE, DEFAULT_DRAIN_GRACE)),
            app_dir=env.get(ENV_APP_DIR) or None,
            probe_path=env.get(ENV_PROBE_PATH) or None,
            app_metrics_path=env.get(ENV_APP_METRICS_PATH, DEFAULT_APP_METRICS_PATH),
            debug_token=env.get(ENV_DEBUG_TOKEN) or None,
            insecure_app_routes=env.get(ENV_DEBUG_INSECURE_APP_ROUTES, "0").strip() == "1",
            interface=env.get(ENV_INTERFACE) or DEFAULT_INTERFACE,
            threads=int(env.get(ENV_THREADS) or DEFAULT_THREADS),
            loop=env.get(ENV_LOOP) or DEFAULT_LOOP,
            http=env.get(ENV_HTTP) or DEFAULT_HTTP,
            otel_global=env.get(ENV_OTEL_GLOBAL, "0").strip() == "1",
            report_imports=env.get(ENV_REPORT_IMPORTS, "0").strip() == "1",
            bake_window=float(env.get(ENV_BAKE_WINDOW) or 0.0),
        )


def worker_index(env: Mapping[str, str] | None = None) -> int:
    """This process's index in its generation (``SWAPPROF_WORKER``; 0 when unset)."""
    text = (os.environ if env is None else env).get(ENV_WORKER, "0")
    return int(text) if text.isdigit() else 0
