"""An ASGI wrapper that tells swapprof how each worker process lives: for any ASGI server.

    app = swapprof.integrations.asgi.wrap(app)           # in your code, or without touching it:
    SWAPPROF_APP=myapp:app uvicorn swapprof.integrations.asgi:app --workers 2

In each worker process it stamps (CLOCK_MONOTONIC) and sends as events (``_events``: the
datagram socket in ``SWAPPROF_EVENTS``, which ``swapprof observe`` sets, else
``RUN_DIR/events.jsonl``): ``started`` (the process's start, from /proc), ``imported`` (the app
object exists), ``lifespan_ready`` (lifespan startup complete), ``served`` (the first HTTP
response started), ``shutdown`` (SIGTERM/SIGINT arrived, or lifespan shutdown began) and
``stopped`` (lifespan shutdown complete). After the first response each request costs one
attribute check; nothing else touches the request path.

The signal stamp wraps the server's own handler (installed by then) and calls it: it only
records. An app without lifespan support still reports ``served``.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from swapprof.integrations import _events as ev

ENV_APP: Final = "SWAPPROF_APP"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ObservedApp", "process_start_ns", "wrap"]


def process_start_ns(pid: int | None = None) -> int | None:
    """When process ``pid`` (default: this one) started, on CLOCK_MONOTONIC (10 ms ticks)."""
    try:
        with open(f"/proc/{pid or os.getpid()}/stat") as fh:
            ticks = int(fh.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    since_boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ticks * 1_000_000_000 // os.sysconf(
        "SC_CLK_TCK"
    )
    return time.monotonic_ns() - since_boot_ns


class ObservedApp:
    """``app`` with its worker's lifecycle reported (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, sender: ev.Sender | None = None, *, announce: bool = True, **fields: Any
    ) -> None:
        self.app = app
        self.sender = sender or ev.Sender.from_env()
        self.fields = fields
        self.served = False
        self._pid = 0
        if announce:  # False: the host's hooks sent these (gunicorn's post_fork, post_worker_init)
            started = process_start_ns()
            if started is not None:
                self._emit(ev.STARTED, started, source="proc")
            self._emit(ev.IMPORTED)

    def _emit(self, name: str, ns: int | None = None, **fields: Any) -> None:
        self.sender.send(ev.event(name, ns, **self.fields, **fields))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind == "http" and (not self.served or self._pid != os.getpid()):

            async def first_send(message: Message) -> None:
                if message.get("type") == "http.response.start" and not self.served:
                    self.served, self._pid = True, os.getpid()
                    self._emit(ev.SERVED)
                await send(message)

            await self.app(scope, receive, first_send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def observed_receive() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                self._emit(ev.SHUTDOWN, source="lifespan")
            return message

        async def observed_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                self._emit(ev.LIFESPAN_READY)
                self._watch_signals()
            await send(message)
            if kind == "lifespan.shutdown.complete":
                self._emit(ev.STOPPED)

        await self.app(scope, observed_receive, observed_send)

    def _watch_signals(self) -> None:
        """Stamp SIGTERM/SIGINT, then hand them to the server's own handler (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous) and not getattr(previous, "_swapprof", False):
                signal.signal(sig, self._stamping(previous))

    def _stamping(self, previous: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
        def handler(signum: int, frame: Any) -> Any:
            self._emit(ev.SHUTDOWN, source="signal")
            return previous(signum, frame)

        handler._swapprof = True  # type: ignore[attr-defined]
        return handler


def wrap(app: ASGIApp, **fields: Any) -> ObservedApp:
    """``app`` reporting its worker's lifecycle to swapprof (``SWAPPROF_EVENTS`` or the run dir)."""
    return app if isinstance(app, ObservedApp) else ObservedApp(app, **fields)


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in (attribute or "app").split("."):
        value = getattr(value, part)
    return value


def __getattr__(name: str) -> Any:
    """``swapprof.integrations.asgi:app``: the app named by ``SWAPPROF_APP`` (``module:attr``), wrapped."""
    if name != "app":
        raise AttributeError(name)
    target = os.environ.get(ENV_APP)
    if not target:
        from swapprof._errors import ConfigError

        raise ConfigError(f"swapprof.integrations.asgi:app needs {ENV_APP}=module:attribute (your app)")
    globals()["app"] = observed = wrap(_load(target))
    return observed
