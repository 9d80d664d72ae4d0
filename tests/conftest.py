"""Test-wide guards: no child process left behind, no global hook left changed.

OpenTelemetry's global providers count as global hooks. Its setters work once per process, so
a test that needs to set them asks for ``otel_globals``: a fresh, unset state for the test, the
previous state (and swapprof's ``configure`` singleton) restored afterwards.

The test process makes itself a child subreaper, so generations orphaned by a killed master
are re-parented to it and a leak is seen instead of vanishing into init.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator

import pytest

PR_SET_CHILD_SUBREAPER = 36
WATCHED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
    signal.SIGPIPE,
)
CHILD_EXIT_DEADLINE_S = 15.0


def pytest_configure(config: pytest.Config) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> dict[int, str]:
    """Direct children of this process: pid -> state letter (Z = zombie)."""
    me = os.getpid()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == me:
            found[int(entry)] = fields[0]
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _otel_state() -> tuple[object, ...]:
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal

    return (
        trace._TRACER_PROVIDER,
        trace._TRACER_PROVIDER_SET_ONCE._done,
        metrics_internal._METER_PROVIDER,
        metrics_internal._METER_PROVIDER_SET_ONCE._done,
        metrics_internal._PROXY_METER_PROVIDER._real_meter_provider,
    )


def _set_otel_state(state: tuple[object, ...]) -> None:
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal

    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = state[0], state[1]  # type: ignore[assignment]
    metrics_internal._METER_PROVIDER = state[2]  # type: ignore[assignment]
    metrics_internal._METER_PROVIDER_SET_ONCE._done = state[3]  # type: ignore[assignment]
    metrics_internal._PROXY_METER_PROVIDER._real_meter_provider = state[4]  # type: ignore[assignment]


@pytest.fixture
def otel_globals() -> Iterator[None]:
    """Unset OTel global providers and no swapprof telemetry for the test; restored after."""
    from swapprof.telemetry import _setup

    saved, saved_current = _otel_state(), _setup._current
    _set_otel_state((None, False, None, False, None))
    _setup._current = None
    try:
        yield
    finally:
        if _setup._current is not None:
            _setup._current.shutdown(1.0)
        _setup._current = saved_current
        _set_otel_state(saved)


@pytest.fixture(autouse=True)
def no_leaked_children_or_hooks() -> Iterator[None]:
    otel = _otel_state()
    handlers = {s: signal.getsignal(s) for s in WATCHED_SIGNALS}
    callbacks = list(gc.callbacks)
    tracing = tracemalloc.is_tracing()
    before = set(_children())
    yield
    problems = []
    deadline = time.monotonic() + CHILD_EXIT_DEADLINE_S
    while True:
        alive = {pid: st for pid, st in _children().items() if st != "Z" and pid not in before}
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid, state in _children().items():
        if state == "Z":  # orphans re-parented to us, or children nobody waited for
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    if alive:
        problems.append("child processes left running: " + "; ".join(f"{p} {_cmdline(p)}" for p in alive))
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    changed = [signal.Signals(s).name for s, h in handlers.items() if signal.getsignal(s) != h]
    if changed:
        problems.append(f"signal handlers changed: {changed}")
        for s, h in handlers.items():
            signal.signal(s, h)
    if list(gc.callbacks) != callbacks:
        problems.append("gc.callbacks changed")
        gc.callbacks[:] = callbacks
    if _otel_state() != otel:
        problems.append("OpenTelemetry global providers changed (use the otel_globals fixture)")
        _set_otel_state(otel)
    if tracemalloc.is_tracing() != tracing:
        problems.append("tracemalloc state changed")
        (tracemalloc.start if tracing else tracemalloc.stop)()
    if problems:
        pytest.fail("; ".join(problems))
