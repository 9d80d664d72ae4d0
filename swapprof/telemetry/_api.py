"""How swapprof's recorders reach OpenTelemetry: API-only access and "never raise into the host".

Shared by reload tracking (``swapprof.reload``) and the GC monitor (``swapprof.gc``).

Observable instruments cannot be unregistered, and an SDK meter hands back the first instrument
(with its callbacks) when a name is registered twice. So each meter provider gets one set of
instruments (``PerProvider``) whose callbacks read whichever monitors or trackers are alive.
``None`` stands for the global provider, looked up lazily so a later SDK still receives the data.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from opentelemetry import metrics, trace

from swapprof._version import __version__

SCOPE = "swapprof"

log = logging.getLogger("swapprof.telemetry")

T = TypeVar("T")


def get_meter(provider: metrics.MeterProvider | None) -> metrics.Meter:
    """The ``swapprof`` meter of ``provider`` (the global provider when None)."""
    return metrics.get_meter(SCOPE, __version__, meter_provider=provider)


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """The ``swapprof`` tracer of ``provider`` (the global provider when None)."""
    return trace.get_tracer(SCOPE, __version__, tracer_provider=provider)


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run a telemetry step; log and swallow any exception so the host program carries on."""
    try:
        yield
    except Exception:
        log.warning("swapprof telemetry failed while %s", what, exc_info=True)


class PerProvider(Generic[T]):
    """One lazily built ``T`` per meter provider (weakly keyed; ``None`` = the global one)."""

    def __init__(self, factory: Callable[[metrics.Meter], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._global: T | None = None
        self._by_provider: weakref.WeakKeyDictionary[metrics.MeterProvider, T] = weakref.WeakKeyDictionary()

    def get(self, provider: metrics.MeterProvider | None) -> T:
        with self._lock:
            if provider is None:
                if self._global is None:
                    self._global = self._factory(get_meter(None))
                return self._global
            found = self._by_provider.get(provider)
            if found is None:
                found = self._by_provider[provider] = self._factory(get_meter(provider))
            return found
