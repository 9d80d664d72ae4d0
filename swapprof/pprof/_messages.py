"""The messages of the debug endpoints: requests in, responses out, and the namespace they live in.

Everything that answers a request (the router, the pprof handlers) and every adapter (ASGI, WSGI,
standalone) speaks these types; this module imports nothing else of swapprof, so the dependency
runs one way: adapters -> router (``_http``) -> handlers (``_handlers``) -> messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

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
