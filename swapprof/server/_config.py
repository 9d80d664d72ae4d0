"""Settings of the reference server: one setting = one keyword = one CLI flag = one env var.

Precedence: explicit argument, then ``SWAPPROF_<NAME>`` in the environment, then the default.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from swapprof._errors import ConfigError
from swapprof._vocabulary import BAKE_LOW_TRAFFIC_POLICIES
from swapprof.server._contract import (
    DEFAULT_APP_METRICS_PATH,
    DEFAULT_DRAIN_GRACE,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HTTP,
    DEFAULT_INTERFACE,
    DEFAULT_LOOP,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_THREADS,
    ENV_BAKE_WINDOW,
    ENV_DEBUG_INSECURE_APP_ROUTES,
    ENV_DEBUG_TOKEN,
    ENV_DRAIN_GRACE,
    ENV_DRAIN_TIMEOUT,
    ENV_HTTP,
    ENV_INTERFACE,
    ENV_LOOP,
    ENV_PRELOAD,
    ENV_READY_TIMEOUT,
    ENV_RUN_DIR,
    ENV_THREADS,
    PRELOAD_AUTO,
    GenerationContract,
)
from swapprof.server._fds import BindSpec, parse_bind
from swapprof.server._rundir import DEFAULT_RUN_DIR
from swapprof.server._stack import missing
from swapprof.telemetry._settings import otel_global as otel_global_setting

DEFAULT_BIND = "127.0.0.1:8000"
_APP_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

# Environment variable names of the master's own settings (the ones it passes on to a
# generation are named in _contract).
ENV_DEBUG_BIND = "SWAPPROF_DEBUG_BIND"
ENV_SPARE = "SWAPPROF_SPARE"
ENV_FORK_WORKERS = "SWAPPROF_FORK_WORKERS"
ENV_EXIT_GRACE = "SWAPPROF_EXIT_GRACE"
ENV_DEBUG_TOKEN_FILE = "SWAPPROF_DEBUG_TOKEN_FILE"  # read by the CLI (swapprof serve)
ENV_WORKERS = "SWAPPROF_WORKERS"
WORKERS_AUTO = "auto"
# the bake's rules (the window itself, SWAPPROF_BAKE_WINDOW, also goes to the generations)
ENV_BAKE_MIN_REQUESTS = "SWAPPROF_BAKE_MIN_REQUESTS"
ENV_BAKE_ALPHA = "SWAPPROF_BAKE_ALPHA"
ENV_BAKE_ERROR_MARGIN = "SWAPPROF_BAKE_ERROR_MARGIN"
ENV_BAKE_LATENCY_MARGIN = "SWAPPROF_BAKE_LATENCY_MARGIN"
ENV_BAKE_LATENCY_FLOOR_MS = "SWAPPROF_BAKE_LATENCY_FLOOR_MS"
ENV_BAKE_LOW_TRAFFIC = "SWAPPROF_BAKE_LOW_TRAFFIC"
BAKE_WINDOW_MAX_S = 300.0
_BAKE_NUMBERS = (
    ("bake_window", ENV_BAKE_WINDOW),
    ("bake_alpha", ENV_BAKE_ALPHA),
    ("bake_error_margin", ENV_BAKE_ERROR_MARGIN),
    ("bake_latency_margin", ENV_BAKE_LATENCY_MARGIN),
    ("bake_latency_floor_ms", ENV_BAKE_LATENCY_FLOOR_MS),
)


def workers_count(value: str | int) -> int:
    """``--workers``/``SWAPPROF_WORKERS``: a whole number >= 1, or ``auto`` (the CPUs this
    process may run on, ``len(os.sched_getaffinity(0))``). Raise ConfigError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == WORKERS_AUTO:
            return len(os.sched_getaffinity(0))
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"--workers {value!r}: expected a whole number (at least 1) or 'auto'"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--workers must be a whole number of processes, at least 1, not {value!r}")
    return value


@dataclass(frozen=True)
class ServerConfig:
    """What ``swapprof serve`` runs. Every field has a finite, documented default."""

    app: str
    binds: tuple[str, ...] = ()
    uds: str | None = None
    app_dir: str | None = None
    run_dir: str = DEFAULT_RUN_DIR
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    """Seconds a new generation has from spawn to READY before it is rolled back."""
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    """Seconds the old generation has to finish in-flight requests; then SIGKILL (counted)."""
    drain_grace: float = DEFAULT_DRAIN_GRACE
    exit_grace: float = 5.0
    """Seconds a drained generation has to exit (lifespan shutdown, telemetry flush) before SIGKILL."""
    """Seconds an idle keep-alive connection is kept open after the switch before it is closed."""
    probe_path: str | None = None
    """If set, the self-probe also asks the app for this path and wants a 2xx."""
    debug_bind: str | None = "127.0.0.1:0"
    """Loopback address of the master's /metrics and /debug/swapprof/*; None or "" turns it off."""
    debug_token: str | None = None
    """If set, the debug endpoints want ``Authorization: Bearer TOKEN``."""
    app_metrics_path: str = DEFAULT_APP_METRICS_PATH
    """Path each generation serves its own metrics on, through the app's listeners ("" = off);
    like the app-port debug routes, only with a token or ``debug_insecure_app_routes``."""
    debug_insecure_app_routes: bool = False
    """Without a token, serve the app-port debug and metrics routes to loopback clients anyway
    (a reverse proxy on the same host makes every client loopback: see docs/server.md)."""
    preload: tuple[str, ...] = ()
    """Packages a zygote imports once; upgrades then fork it instead of exec'ing (never app code).
    ``auto`` among them: also what the serving generation imported that is not app code."""
    otel_global: bool = False
    """Let each generation's swapprof SDK become the process-global OTel provider, so the app's own
    spans and metrics go where OTEL_* sends them (never into the embedded span file)."""
    spare: bool = True
    """With a zygote: keep one generation forked and warmed ahead, so an upgrade starts from it."""
    fork_workers: bool = True
    """Without a zygote and with N > 1 workers: one fresh interpreter imports the app and the N
    workers are its forks (``master._exec_forks``); False: every worker is exec'd on its own."""
    interface: str = DEFAULT_INTERFACE
    """``asgi``, ``wsgi``, or ``auto``: told from the app's signature (uvicorn's names)."""
    threads: int = DEFAULT_THREADS
    """Threads that run a WSGI app's requests (the WSGI bridge's pool); unused for ASGI apps."""
    loop: str = DEFAULT_LOOP
    """Event loop: ``asyncio``, ``uvloop``, or ``auto`` (uvloop when installed), as uvicorn."""
    http: str = DEFAULT_HTTP
    """HTTP parser: ``h11``, ``httptools``, or ``auto`` (httptools when installed), as uvicorn."""
    workers: int = 1
    """Worker processes per generation, serving the same listeners (``auto``: one per CPU)."""
    bake_window: float = 0.0
    """Seconds the new generation's requests are judged after the switch, the old one parked (0: off)."""
    bake_min_requests: int = 50
    """Requests each window needs before any verdict."""
    bake_alpha: float = 0.01
    """Significance level of the window's last look; early looks use a tenth of it."""
    bake_error_margin: float = 0.01
    """The new error ratio must exceed the old one by more than this (significantly) to fail."""
    bake_latency_margin: float = 0.2
    """The new median latency must exceed the old one by more than this fraction to fail..."""
    bake_latency_floor_ms: float = 2.0
    """... and by at least this many milliseconds."""
    bake_low_traffic: str = "pass"
    """Too little traffic for a verdict at the window's end: ``pass``, or ``extend`` (up to 3 more windows)."""
    python: str = field(default_factory=lambda: _default_python())

    def __post_init__(self) -> None:
        if not _APP_RE.match(self.app):
            raise ConfigError(f"app {self.app!r}: expected MODULE:ATTRIBUTE, e.g. swapprof.server.demo:app")
        for name in ("ready_timeout", "drain_timeout", "drain_grace", "exit_grace"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive number of seconds, not {value!r}"
                )
        for name in ("interface", "loop", "http"):
            problem = missing(name, getattr(self, name))
            if problem is not None:
                raise ConfigError(problem)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(
                f"--threads must be a whole number of threads, at least 1, not {self.threads!r}"
            )
        object.__setattr__(self, "workers", workers_count(self.workers))  # "auto" -> the CPU count
        self._check_bake()
        if self.drain_grace > self.drain_timeout:
            raise ConfigError("--drain-grace must not exceed --drain-timeout")
        if self.probe_path is not None and not self.probe_path.startswith("/"):
            raise ConfigError(f"--probe-path {self.probe_path!r} must start with '/'")
        if self.debug_bind:
            spec = parse_bind(self.debug_bind)
            if spec.is_unix:
                raise ConfigError("--debug-bind takes HOST:PORT, not a Unix socket")
            if not _loopback(spec.host) and not self.debug_token:
                raise ConfigError(
                    f"--debug-bind {self.debug_bind!r} is not a loopback address: the debug routes would "
                    "answer anyone who can reach it; set a token (--debug-token-file or SWAPPROF_DEBUG_TOKEN)"
                )
        if self.app_metrics_path and not self.app_metrics_path.startswith("/"):
            raise ConfigError(
                f"--app-metrics-path {self.app_metrics_path!r} must start with '/' (or be empty)"
            )
        app_top = self.app.split(":")[0].split(".")[0]
        for name in self.preload:
            if name == PRELOAD_AUTO:
                continue
            if not re.match(r"^[A-Za-z_][\w.]*$", name):
                raise ConfigError(f"--preload {name!r} is not a module name")
            if name.split(".")[0] == app_top:
                raise ConfigError(
                    f"--preload {name!r} is app code (the app is {self.app}); the zygote never imports it"
                )
        if not self.spare and not self.preload:
            raise ConfigError("--no-spare (SWAPPROF_SPARE=0) applies only with --preload: there is no zygote")
        if self.app_dir is not None and not Path(self.app_dir).is_dir():
            raise ConfigError(f"--app-dir {self.app_dir!r} is not a directory")
        self.bind_specs()  # validates every --bind

    def _check_bake(self) -> None:
        for name, low, high in (
            ("bake_window", 0.0, BAKE_WINDOW_MAX_S),
            ("bake_alpha", 1e-9, 0.5),
            ("bake_error_margin", 0.0, 1.0),
            ("bake_latency_margin", 0.0, 100.0),
            ("bake_latency_floor_ms", 0.0, 60_000.0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a number in [{low:g}, {high:g}], not {value!r}"
                )
        if (
            isinstance(self.bake_min_requests, bool)
            or not isinstance(self.bake_min_requests, int)
            or self.bake_min_requests < 1
        ):
            raise ConfigError(
                f"--bake-min-requests must be a whole number, at least 1, not {self.bake_min_requests!r}"
            )
        if self.bake_low_traffic not in BAKE_LOW_TRAFFIC_POLICIES:
            raise ConfigError(f"--bake-low-traffic {self.bake_low_traffic!r}: expected pass or extend")

    def contract(self, run_dir: str, master_pid: int) -> GenerationContract:
        """What each generation process is told of these settings (``_contract``)."""
        return GenerationContract(
            app=self.app,
            run_dir=run_dir,
            master_pid=master_pid,
            ready_timeout=self.ready_timeout,
            drain_timeout=self.drain_timeout,
            drain_grace=self.drain_grace,
            app_dir=str(Path(self.app_dir).resolve()) if self.app_dir else None,
            probe_path=self.probe_path,
            app_metrics_path=self.app_metrics_path,
            debug_token=self.debug_token,
            insecure_app_routes=self.debug_insecure_app_routes,
            otel_global=self.otel_global,
            interface=self.interface,
            threads=self.threads,
            loop=self.loop,
            http=self.http,
            report_imports=self.preload_auto,
            bake_window=self.bake_window,
        )

    @property
    def preload_auto(self) -> bool:
        """``--preload auto``: the zygote learns its set from the serving generation."""
        return PRELOAD_AUTO in self.preload

    @property
    def preload_declared(self) -> tuple[str, ...]:
        """The packages named in ``--preload`` (without ``auto``)."""
        return tuple(p for p in self.preload if p != PRELOAD_AUTO)

    def bind_specs(self) -> list[BindSpec]:
        values = list(self.binds)
        if self.uds:
            values.append(f"unix:{self.uds}")
        if not values:
            values = [DEFAULT_BIND]
        return [parse_bind(v) for v in values]

    @classmethod
    def from_env(cls, app: str, env: Mapping[str, str] | None = None, **kwargs: object) -> ServerConfig:
        """Build from keyword arguments, filling the unset ones from SWAPPROF_* variables."""
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in kwargs.items() if v is not None}
        for name, var in (
            ("ready_timeout", ENV_READY_TIMEOUT),
            ("drain_timeout", ENV_DRAIN_TIMEOUT),
            ("drain_grace", ENV_DRAIN_GRACE),
            ("exit_grace", ENV_EXIT_GRACE),
        ):
            if name not in values and var in env:
                try:
                    values[name] = float(env[var])
                except ValueError:
                    raise ConfigError(f"{var}={env[var]!r} is not a number of seconds") from None
        for name, var in (
            ("run_dir", ENV_RUN_DIR),
            ("debug_bind", ENV_DEBUG_BIND),
            ("debug_token", ENV_DEBUG_TOKEN),
            ("interface", ENV_INTERFACE),
            ("loop", ENV_LOOP),
            ("http", ENV_HTTP),
        ):
            if name not in values and var in env:
                values[name] = env[var]
        if "threads" not in values and env.get(ENV_THREADS):
            try:
                values["threads"] = int(env[ENV_THREADS])
            except ValueError:
                raise ConfigError(f"{ENV_THREADS}={env[ENV_THREADS]!r} is not a whole number") from None
        for name, var in _BAKE_NUMBERS:
            if name not in values and env.get(var):
                try:
                    values[name] = float(env[var])
                except ValueError:
                    raise ConfigError(f"{var}={env[var]!r} is not a number") from None
        if "bake_min_requests" not in values and env.get(ENV_BAKE_MIN_REQUESTS):
            try:
                values["bake_min_requests"] = int(env[ENV_BAKE_MIN_REQUESTS])
            except ValueError:
                raise ConfigError(
                    f"{ENV_BAKE_MIN_REQUESTS}={env[ENV_BAKE_MIN_REQUESTS]!r} is not a whole number"
                ) from None
        if "bake_low_traffic" not in values and env.get(ENV_BAKE_LOW_TRAFFIC):
            values["bake_low_traffic"] = env[ENV_BAKE_LOW_TRAFFIC].strip()
        if "workers" not in values and env.get(ENV_WORKERS):
            values["workers"] = env[ENV_WORKERS]
        if isinstance(values.get("workers"), str):
            values["workers"] = workers_count(str(values["workers"]))
        if "spare" not in values and env.get(ENV_SPARE):
            if env[ENV_SPARE] not in ("0", "1"):
                raise ConfigError(f"{ENV_SPARE}={env[ENV_SPARE]!r}: expected 0 or 1")
            values["spare"] = env[ENV_SPARE] == "1"
        if "fork_workers" not in values and env.get(ENV_FORK_WORKERS):
            if env[ENV_FORK_WORKERS] not in ("0", "1"):
                raise ConfigError(f"{ENV_FORK_WORKERS}={env[ENV_FORK_WORKERS]!r}: expected 0 or 1")
            values["fork_workers"] = env[ENV_FORK_WORKERS] == "1"
        if "debug_insecure_app_routes" not in values and ENV_DEBUG_INSECURE_APP_ROUTES in env:
            values["debug_insecure_app_routes"] = env[ENV_DEBUG_INSECURE_APP_ROUTES].strip() == "1"
        if "otel_global" not in values:
            values["otel_global"] = otel_global_setting(None, env)
        if "preload" not in values and env.get(ENV_PRELOAD):
            values["preload"] = tuple(p for p in env[ENV_PRELOAD].split(",") if p)
        return replace(cls(app=app), **values)  # type: ignore[arg-type]


def _loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; a name or wildcard (0.0.0.0, ::) is not."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_python() -> str:
    import sys

    return sys.executable
