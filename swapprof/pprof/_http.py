"""The routing core shared by the ASGI, WSGI and standalone adapters: requests in, responses out.

Blocking by design (profiles wait); adapters run ``Router.handle`` off their event loop and give
each request a ``wait(seconds)`` that returns False as soon as the client has gone away. The
message types are in ``_messages``; /debug/pprof/* is answered by ``_handlers``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any

from swapprof._auth import CHALLENGE, bearer_ok
from swapprof.pprof._handlers import _atoi, handle_pprof
from swapprof.pprof._heap import start_configured
from swapprof.pprof._messages import PPROF, SWAPPROF, Request, Response, error
from swapprof.pprof._settings import DEFAULT_SECONDS, JsonRoute, Settings, check_route
from swapprof.pprof._slots import Slots

log = logging.getLogger("swapprof.pprof")


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = Slots()

    def add_route(self, name: str, route: JsonRoute) -> None:
        """Serve ``route()`` as JSON at /debug/swapprof/<name> from now on (replaces a namesake)."""
        check_route(name, route)
        self.settings.routes[name] = route

    def refuse(self, request: Request) -> Response | None:
        """401 unless the request carries the configured bearer token."""
        token = self.settings.token
        if token is None:
            return None
        if bearer_ok(request.headers.get("authorization"), token):
            return None
        challenge = ("WWW-Authenticate", CHALLENGE)
        return error(401, "Unauthorized: send the header Authorization: Bearer <token>", challenge)

    def json_route(self, path: str) -> tuple[str, JsonRoute | None] | None:
        """For a /debug/swapprof/<name> path: (name, callable or None if unknown); else None."""
        if not (path == SWAPPROF or path.startswith(SWAPPROF + "/")):
            return None
        name = path[len(SWAPPROF) :].strip("/")
        return name, self.settings.routes.get(name)

    def json_response(self, name: str, value: object) -> Response:
        try:
            body = json.dumps(value, default=str, indent=2).encode()
        except (TypeError, ValueError) as exc:
            return error(500, f"route {name!r} returned something JSON cannot encode: {exc}")
        return Response(
            200, [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")], body
        )

    def route_failed(self, name: str, exc: BaseException) -> Response:
        log.warning("debug route %r failed", name, exc_info=exc)
        return error(500, f"route {name!r} failed: {type(exc).__name__}: {exc}")

    def handle(self, request: Request) -> Response:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        found = self.json_route(request.path)
        if found is not None:
            name, route = found
            if not name:
                return self.json_response("", {"routes": sorted(self.settings.routes)})
            if route is None:
                return error(404, "Unknown route")
            try:
                value: Any = route()
                if inspect.isawaitable(value):
                    value = asyncio.run(_awaited(value))
            except Exception as exc:
                return self.route_failed(name, exc)
            return self.json_response(name, value)
        seconds = _duration(request, self.settings.max_seconds)
        slot = self.slots.take(seconds) if seconds else None
        if seconds and slot is None:
            return error(
                429,
                f"{self.slots.limit} timed profile requests are running; try again later",
                ("Retry-After", str(self.slots.retry_after())),
            )
        try:
            return handle_pprof(self.settings, request)
        except Exception as exc:  # a bug of ours must not take the host's server down
            log.exception("debug route %s failed", request.path)
            return error(500, f"internal error in {request.path}: {type(exc).__name__}: {exc}")
        finally:
            if slot is not None:
                self.slots.give(slot)


def _duration(request: Request, max_seconds: int) -> float:
    """Seconds a pprof request will hold its thread (0: it answers at once, or is refused).
    ``seconds`` is read as the handlers read it (``_atoi``), so no spelling of it the handlers
    accept (" 5", "+5") gets past the cap."""
    if not request.path.startswith(PPROF + "/"):
        return 0.0
    seconds = _atoi(request.query.get("seconds"))
    if request.path == PPROF + "/profile" and (seconds is None or seconds <= 0):
        return float(min(DEFAULT_SECONDS, max_seconds))  # Go's default, as ``cpu`` takes it
    return float(seconds) if seconds is not None and 0 < seconds <= max_seconds else 0.0  # else 400


async def _awaited(value: Any) -> Any:
    return await value


class MountedRouter:
    """What the ASGI and WSGI adapters share: a router over ``settings``, tracemalloc started
    as configured (``close()`` stops it if this started it), JSON routes added later."""

    def __init__(self, settings: Settings) -> None:
        self.router = Router(settings)
        self._stop_tracing = start_configured(settings.tracemalloc)

    def add_route(self, name: str, route: JsonRoute) -> None:
        """Serve ``route()`` as JSON at /debug/swapprof/<name> (sync, or async under ASGI)."""
        self.router.add_route(name, route)

    def close(self) -> None:
        self._stop_tracing()
