"""A WSGI app with the debug routes in front of it, on wsgiref's threaded server.

    .venv/bin/python examples/pprof/wsgi_app.py            # http://127.0.0.1:8001/

Flask: ``app.wsgi_app = swapprof.pprof.wsgi_app(app.wsgi_app)``. Django: wrap the callable
``get_wsgi_application()`` returns the same way, in wsgi.py. A threaded server lets a 30 s
profile run while other requests are answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import swapprof.pprof


def render(rows: int) -> bytes:
    return "\n".join(f"row {i}: {i * i}" for i in range(rows)).encode()


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [render(200_000) if environ["PATH_INFO"] == "/report" else b"hello; try /report\n"]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    wrapped = swapprof.pprof.wsgi_app(app)
    with make_server("127.0.0.1", 8001, wrapped, server_class=ThreadingWSGIServer) as server:
        print("http://127.0.0.1:8001/  and  http://127.0.0.1:8001/debug/pprof/")
        server.serve_forever()
