"""A loopback stand-in for the few Grafana HTTP API routes `swapprof dashboards push` uses.

GET/POST /api/folders, GET /api/dashboards/uid/UID, POST /api/dashboards/db; answers like
Grafana 11 (status codes and the fields the client reads). Every request is recorded, with its
headers and JSON body, so tests assert exactly what was sent. Port 0; runs in a thread.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GrafanaState:
    token: str | None = "secret-token"  # None: anonymous access allowed
    forbidden: bool = False  # writes answer 403 (a Viewer token)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state = self.server.state
        with self.server.lock:
            state.requests.append(
                Request(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if state.token is not None and self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._reply(401, {"message": "Unauthorized"})
            if state.forbidden and method == "POST":
                return self._reply(
                    403, {"message": "You'll need additional permissions to perform this action."}
                )
            status, answer = _route(state, method, self.path.split("?")[0], body)
        self._reply(status, answer)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


def _route(state: GrafanaState, method: str, path: str, body: Any) -> tuple[int, Any]:
    if path == "/api/folders" and method == "GET":
        return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in state.folders.values()]
    if path == "/api/folders" and method == "POST":
        uid = body.get("uid") or f"auto{len(state.folders)}"
        if uid in state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        state.folders[uid] = {"id": len(state.folders) + 1, "uid": uid, "title": body["title"], "version": 1}
        return 200, state.folders[uid]
    if path.startswith("/api/dashboards/uid/") and method == "GET":
        stored = state.dashboards.get(path.rsplit("/", 1)[1])
        return (404, {"message": "Dashboard not found"}) if stored is None else (200, stored)
    if path == "/api/dashboards/db" and method == "POST":
        return _save(state, body)
    return 404, {"message": "Not found"}


def _save(state: GrafanaState, body: dict[str, Any]) -> tuple[int, Any]:
    board = dict(body["dashboard"])
    uid = board["uid"]
    previous = state.dashboards.get(uid)
    if previous is not None and not body.get("overwrite"):
        return 412, {
            "message": "The dashboard has been changed by someone else",
            "status": "version-mismatch",
        }
    version = 1 if previous is None else previous["dashboard"]["version"] + 1
    board.update(id=7, version=version)
    slug = re.sub(r"[^a-z0-9]+", "-", board["title"].lower()).strip("-")
    url = f"/d/{uid}/{slug}"
    meta = {"folderUid": body.get("folderUid", ""), "url": url, "slug": slug, "version": version}
    state.dashboards[uid] = {"dashboard": board, "meta": meta}
    return 200, {"id": 7, "uid": uid, "url": url, "status": "success", "version": version, "slug": slug}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: GrafanaState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.lock = threading.Lock()


class FakeGrafana:
    """``with FakeGrafana() as grafana: push(grafana.url, token=grafana.state.token)``."""

    def __init__(self, state: GrafanaState | None = None) -> None:
        self.state = state or GrafanaState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-grafana", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.state.requests]
