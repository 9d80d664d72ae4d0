"""WSGI adapter for Flask, Django and any WSGI server; optionally wraps another WSGI app.

Concurrency is the server's: under a threaded server a 30 s profile blocks only its own worker.
A disconnect stops a running profile where the server exposes the client socket
(``gunicorn.socket``, ``werkzeug.socket``); elsewhere the profile runs to its end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from swapprof.pprof._http import MountedRouter
from swapprof.pprof._messages import MAX_BODY, Request, error, locate, sleep_wait
from swapprof.pprof._server import socket_wait
from swapprof.pprof._settings import JsonRoute, Settings


class PprofWSGI(MountedRouter):
    """The WSGI callable ``wsgi_app()`` returns. ``close()`` stops tracemalloc if it started it."""

    def __init__(self, app: WSGIApplication | None, settings: Settings) -> None:
        super().__init__(settings)
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raw_path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = locate(environ.get("PATH_INFO", ""), environ.get("SCRIPT_NAME", ""), mounted=self.app is None)
        if path is None:
            if self.app is not None:
                return self.app(environ, start_response)
            response = error(404, "Not Found")
        else:
            try:
                length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            client = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
            wait = socket_wait(client) if isinstance(client, socket.socket) else sleep_wait
            query = dict(reversed(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)))
            headers = {
                k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
            }
            method = environ.get("REQUEST_METHOD", "GET")
            request = Request(path, query, headers, method, body, wait, raw_path)
            response = self.router.handle(request)
        start_response(response.status_line, [*response.headers, ("Content-Length", str(len(response.body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]


def wsgi_app(
    app: WSGIApplication | None = None,
    *,
    token: str | None = None,
    routes: Mapping[str, JsonRoute] | None = None,
    max_seconds: int | None = None,
    hz: int | None = None,
    tracemalloc: int | bool | None = None,
) -> PprofWSGI:
    """A WSGI app serving /debug/pprof/* and /debug/swapprof/*; everything else goes to ``app``."""
    settings = Settings.resolve(
        token=token, routes=routes, max_seconds=max_seconds, hz=hz, tracemalloc=tracemalloc
    )
    return PprofWSGI(app, settings)
