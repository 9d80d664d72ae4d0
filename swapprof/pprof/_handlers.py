"""The /debug/pprof/* routes, with Go's parameters, status codes, headers and messages."""

from __future__ import annotations

import sys
import time

from swapprof._errors import ConfigError
from swapprof.pprof._cpu import DEFAULT_HZ, sample
from swapprof.pprof._errors import ProfileError, ProfilerUnavailableError, ProfilingInUseError
from swapprof.pprof._heap import DEFAULT_FRAMES, heap, heap_delta
from swapprof.pprof._messages import PPROF, Request, Response, attachment, error, text
from swapprof.pprof._model import Profile
from swapprof.pprof._proto import encode
from swapprof.pprof._settings import DEFAULT_SECONDS, Settings
from swapprof.pprof._text import legacy_text
from swapprof.pprof._threads import goroutine_dump, goroutine_profile

#: Profiles served by name (Go's pprof.Lookup); all of them support ?seconds= deltas.
PROFILES = ("allocs", "block", "goroutine", "heap", "mutex", "threadcreate")
BACKENDS = ("sampler", "py-spy")
GONE = error(499, "client closed the request")  # never sent: nobody is left to read it


def _atoi(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def empty(name: str) -> Profile:
    """Go's sample types for profiles Python has no data for, so scrapers get a valid profile."""
    if name == "threadcreate":
        return Profile([("threadcreate", "count")], ("threadcreate", "count"), 1, time_nanos=time.time_ns())
    kinds = [("contentions", "count"), ("delay", "nanoseconds")]
    return Profile(kinds, ("contentions", "count"), 1, time_nanos=time.time_ns())


def _collect(name: str, gc: bool) -> Profile:
    if name in ("heap", "allocs"):
        return heap(name, collect=gc)
    return goroutine_profile() if name == "goroutine" else empty(name)


def named(settings: Settings, name: str, req: Request) -> Response:
    debug = _atoi(req.query.get("debug")) or 0
    gc = (_atoi(req.query.get("gc")) or 0) > 0
    if req.query.get("seconds", "") != "":
        seconds = _atoi(req.query["seconds"])
        if seconds is None or seconds <= 0:
            return error(400, 'invalid value for "seconds" - must be a positive integer')
        if seconds > settings.max_seconds:
            return error(
                400, f"profile duration exceeds the server's maximum of {settings.max_seconds} seconds"
            )
        if debug != 0:
            return error(400, "seconds and debug params are incompatible")
        if name in ("heap", "allocs"):
            frames = settings.tracemalloc or DEFAULT_FRAMES
            delta = heap_delta(seconds, req.wait, name, collect=gc, frames=frames)
            if req.gone:
                return GONE
            return attachment(f"{name}-delta", encode(delta))
        before = _collect(name, gc)
        if not req.wait(seconds):
            return GONE
        return attachment(f"{name}-delta", encode(_collect(name, gc).minus(before)))
    if name == "goroutine" and debug >= 2:
        return text(goroutine_dump())
    profile = _collect(name, gc)
    if debug != 0:
        return text(legacy_text(profile, name))
    return attachment(name, encode(profile))


def cpu(settings: Settings, req: Request) -> Response:
    seconds = _atoi(req.query.get("seconds"))
    if seconds is None or seconds <= 0:
        seconds = min(DEFAULT_SECONDS, settings.max_seconds)
    if seconds > settings.max_seconds:
        return error(400, f"profile duration exceeds the server's maximum of {settings.max_seconds} seconds")
    mode, backend = req.query.get("mode") or "cpu", req.query.get("backend") or "sampler"
    if backend not in BACKENDS:
        return error(400, f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    hz = settings.hz or DEFAULT_HZ
    try:
        if backend == "py-spy":
            from swapprof.pprof._pyspy import record

            native = req.query.get("native", "1") not in ("0", "false")
            profile = record(seconds, req.wait, hz=hz, mode=mode, native=native)
        else:
            profile = sample(seconds, req.wait, hz=hz, mode=mode)
    except ConfigError as exc:
        return error(400, str(exc))
    except ProfilingInUseError as exc:
        return error(500, f"Could not enable CPU profiling: {exc}")
    except ProfilerUnavailableError as exc:
        return error(501, f"Could not enable CPU profiling: {exc}")
    except ProfileError as exc:
        return error(500, f"Could not complete CPU profiling: {exc}")
    return GONE if req.gone else attachment("profile", encode(profile))


def symbol() -> Response:
    # Python frames carry their names (the mapping says so), so pprof never asks to look up an
    # address; any address it sends is unknown and, as in Go, left out of the answer.
    return text("num_symbols: 1\n")


def handle_pprof(settings: Settings, req: Request) -> Response:
    if req.path == PPROF:
        last = (req.raw_path or req.path).rstrip("/").rsplit("/", 1)[-1]
        return Response(301, [("Location", f"./{last}/"), ("Content-Type", "text/plain")], b"")
    name = req.path[len(PPROF) + 1 :]
    try:
        if name == "":
            from swapprof.pprof._index import index_page

            return text(index_page(settings), "text/html; charset=utf-8")
        if name == "profile":
            return cpu(settings, req)
        if name == "cmdline":
            return text("\x00".join(sys.orig_argv or [sys.executable, *sys.argv]))
        if name == "symbol":
            return symbol()
        if name == "trace":
            return error(
                501,
                "Could not enable tracing: execution traces are a Go runtime feature that Python "
                "does not have; use /debug/pprof/profile or /debug/pprof/goroutine?debug=2",
            )
        if name in PROFILES:
            return named(settings, name, req)
    except ProfilerUnavailableError as exc:
        return error(501, str(exc))
    except ProfileError as exc:
        return error(500, str(exc))
    return error(404, "Unknown profile")
