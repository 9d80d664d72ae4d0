"""The routing core shared by the ASGI, WSGI and standalone adapters: requests in, responses out.

Blocking by design (profiles wait); adapters run ``Router.handle`` off their event loop and give
each request a ``wait(seconds)`` that returns False as soon as the client has gone away.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from swapprof.pprof._heap import start_configured
from swapprof.pprof._settings import JsonRoute, Settings, check_route

log = logging.getLogger("swapprof.pprof")
PPROF, SWAPPROF = "/debug/pprof", "/debug/swapprof"
TEXT = "text/plain; charset=utf-8"
MAX_BODY = 1 << 20  # request bodies beyond this are cut (only /symbol reads one)


def sleep_wait(seconds: float) -> bool:
    threading.Event().wait(seconds)
    return True


@dataclass
class Request:
    path: str  # in the /debug/... namespace, whatever the mount point
    query: Mapping[str, str] = field(default_factory=dict)  # first value of each parameter
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    method: str = "GET"
    body: bytes = b""
    waiter: Callable[[float], bool] = sleep_wait
    raw_path: str = ""  # the path as the client sent it, for relative redirects
    gone: bool = False  # set once a wait found the client gone

    def wait(self, seconds: float) -> bool:
        """Wait ``seconds``; False (and ``gone``) as soon as the client has disconnected."""
        if not self.gone and not self.waiter(seconds):
            self.gone = True
        return not self.gone


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status_line(self) -> str:
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return str(self.status)


def error(status: int, text: str, *extra: tuple[str, str]) -> Response:
    """Go's serveError: plain text and ``X-Go-Pprof: 1``, so ``go tool pprof`` prints the message."""
    headers = [("Content-Type", TEXT), ("X-Go-Pprof", "1"), ("X-Content-Type-Options", "nosniff"), *extra]
    return Response(status, headers, (text + "\n").encode())


def text(body: str, content_type: str = TEXT) -> Response:
    return Response(
        200, [("Content-Type", content_type), ("X-Content-Type-Options", "nosniff")], body.encode()
    )


def attachment(name: str, data: bytes) -> Response:
    headers = [("Content-Type", "application/octet-stream"), ("X-Content-Type-Options", "nosniff")]
    return Response(200, [*headers, ("Content-Disposition", f'attachment; filename="{name}"')], data)


def locate(path: str, root_path: str = "", *, mounted: bool = False) -> str | None:
    """Map an adapter's path (and mount prefix) into the /debug/... namespace, or None if not ours.

    Paths containing /debug/pprof or /debug/swapprof are ours wherever the app is mounted. A
    ``mounted`` app (not wrapping another) also takes the rest of any other mount prefix, e.g.
    ``/prof/heap`` under ``Mount("/prof", ...)``, as a pprof route.
    """
    full = path if not root_path or path.startswith(root_path) else root_path + path
    for base in (PPROF, SWAPPROF):
        at = full.find(base)
        while at >= 0:
            rest = full[at + len(base) :]
            if rest == "" or rest.startswith("/"):
                return base + rest
            at = full.find(base, at + 1)
    if mounted and root_path and full.startswith(root_path):
        return PPROF + (full[len(root_path) :] or "")
    return None


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def add_route(self, name: str, route: JsonRoute) -> None:
        """Serve ``route()`` as JSON at /debug/swapprof/<name> from now on (replaces a namesake)."""
        check_route(name, route)
        self.settings.routes[name] = route

    def refuse(self, request: Request) -> Response | None:
        """401 unless the request carries the configured bearer token."""
        token = self.settings.token
        if token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        challenge = ("WWW-Authenticate", 'Bearer realm="swapprof"')
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
        from swapprof.pprof._handlers import handle_pprof

        try:
            return handle_pprof(self.settings, request)
        except Exception as exc:  # a bug of ours must not take the host's server down
            log.exception("debug route %s failed", request.path)
            return error(500, f"internal error in {request.path}: {type(exc).__name__}: {exc}")


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
