"""A gunicorn worker's side: stamps sent to its master's recorder, and its first served request.

``post_fork``: ``started`` (and the telemetry inherited from the master is dropped);
``post_worker_init``: ``imported``, and the app is wrapped so that its first response sends
``served`` (WSGI: the first ``start_response``; ASGI -- ``uvicorn.workers.UvicornWorker``,
gunicorn's ``asgi`` worker -- also ``lifespan_ready`` and the shutdown stamps, through
``swapprof.integrations.asgi``); ``worker_exit``: ``stopped``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from swapprof.integrations import _events as ev
from swapprof.integrations.asgi import ObservedApp


class WorkerSide:
    def __init__(self, sender: ev.Sender, generation: int, index: int) -> None:
        self.sender = sender
        self.fields = {"generation": generation, "index": index}
        self.served = False

    def emit(self, name: str, ns: int | None = None) -> None:
        self.sender.send(ev.event(name, ns, **self.fields))

    def wrap(self, worker: Any) -> None:
        """Wrap the app the worker serves (``worker.asgi`` or ``worker.wsgi``)."""
        attribute = "asgi" if getattr(worker, "asgi", None) is not None else "wsgi"
        app = getattr(worker, attribute, None)
        if app is None:
            return
        if attribute == "asgi" or _is_asgi(app):
            wrapped: Any = ObservedApp(app, self.sender, announce=False, **self.fields)
        else:
            wrapped = self._wsgi(app)
        setattr(worker, attribute, wrapped)

    def _wsgi(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def observed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self.served:
                return app(environ, start_response)

            def first_start_response(*args: Any, **kwargs: Any) -> Any:
                if not self.served:
                    self.served = True
                    self.emit(ev.SERVED)
                return start_response(*args, **kwargs)

            return app(environ, first_start_response)

        return observed


def _is_asgi(app: Any) -> bool:
    """uvicorn's test for ``--interface auto``: a coroutine function, or a coroutine ``__call__``."""
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)
