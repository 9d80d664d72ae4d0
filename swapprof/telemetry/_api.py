"""How swapprof's recorders reach OpenTelemetry: API-only access and "never raise into the host".

Shared by reload tracking (``swapprof.reload``) and the GC monitor (``swapprof.gc``).

Observable instruments cannot be unregistered, and an SDK meter hands back the first instrument
(with its callbacks) when a name is registered twice. So each meter provider gets one set of
instruments (``PerProvider``) whose callbacks read whichever monitors or trackers are alive.

Which provider: the one passed in; else swapprof's own, once ``configure()`` ran in this
process (``current()``); else the process-global one, looked up lazily so an SDK the host
program installs later still receives the data. swapprof never records into the global
providers while it has its own: they belong to the application.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry import metrics, trace

from swapprof._version import __version__
from swapprof.telemetry._setup import current

SCOPE = "swapprof"

log = logging.getLogger("swapprof.telemetry")


class Attaching(Protocol):
    def attach(self, subject: Any) -> None: ...


T = TypeVar("T", bound=Attaching)


def meter_provider(provider: metrics.MeterProvider | None = None) -> metrics.MeterProvider | None:
    """``provider``, else swapprof's own meter provider, else None (= the global one)."""
    if provider is not None:
        return provider
    telemetry = current()
    return None if telemetry is None else telemetry.meter_provider


def tracer_provider(provider: trace.TracerProvider | None = None) -> trace.TracerProvider | None:
    """``provider``, else swapprof's own tracer provider, else None (= the global one)."""
    if provider is not None:
        return provider
    telemetry = current()
    return None if telemetry is None else telemetry.tracer_provider


def get_meter(provider: metrics.MeterProvider | None = None) -> metrics.Meter:
    """The ``swapprof`` meter of ``meter_provider(provider)``."""
    return metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider(provider))


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The ``swapprof`` tracer of ``tracer_provider(provider)``."""
    return trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider(provider))


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run a telemetry step; log and swallow any exception so the host program carries on."""
    try:
        yield
    except Exception:
        log.warning("swapprof telemetry failed while %s", what, exc_info=True)


class PerProvider(Generic[T]):
    """One lazily built ``T`` per meter provider (weakly keyed; see ``meter_provider``)."""

    def __init__(self, factory: Callable[[metrics.Meter], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._global: T | None = None
        self._by_provider: weakref.WeakKeyDictionary[metrics.MeterProvider, T] = weakref.WeakKeyDictionary()

    def get(self, provider: metrics.MeterProvider | None) -> T:
        provider = meter_provider(provider)
        with self._lock:
            if provider is None:
                if self._global is None:
                    self._global = self._factory(get_meter(None))
                return self._global
            found = self._by_provider.get(provider)
            if found is None:
                found = self._by_provider[provider] = self._factory(get_meter(provider))
            return found

    def follow(self, explicit: metrics.MeterProvider | None, held: T | None, subject: Any) -> T:
        """The instruments of the provider in effect NOW for ``subject`` (``explicit``, else
        swapprof's own, else the global one), attaching ``subject`` when they are not ``held``.

        A tracker or monitor the app creates at import time exists before swapprof's server
        configures its SDK (after READY); following at each use moves it to swapprof's own
        provider once there is one, instead of leaving it bound to the global proxy."""
        now = self.get(explicit)
        if now is not held:
            now.attach(subject)
        return now
