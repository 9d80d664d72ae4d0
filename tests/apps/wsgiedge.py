"""A plain WSGI app for the edges of PEP 3333 (tests/test_wsgi_bridge.py), no framework between.

``WSGIEDGE_LOG`` names a file the app appends one line to per event (an answer's ``close()``, a
re-raise by ``start_response``), so the test can see what happened inside the server.
``/stream?gate=FILE`` yields its first chunk, then waits (up to 30 s) for FILE to exist.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Callable[[bytes], None]]


def _log(line: str) -> None:
    with open(os.environ["WSGIEDGE_LOG"], "a") as fh:
        fh.write(line + "\n")


class Recorded:
    """An answer iterable that logs ``close <name>`` when the server closes it."""

    def __init__(self, name: str, chunks: Iterable[bytes]) -> None:
        self.name, self.chunks = name, chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        _log(f"close {self.name}")


def _json(start_response: StartResponse, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _environ(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    facts = {k: v for k, v in environ.items() if isinstance(v, str | bool | tuple)}
    facts["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    facts["errors_writes"] = callable(getattr(environ["wsgi.errors"], "write", None))
    return _json(start_response, facts)


def _read(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Read the body the way ``?how=`` says; answer its size, line count and sha256."""
    how = urllib.parse.parse_qs(environ["QUERY_STRING"]).get("how", ["read"])[0]
    stream = environ["wsgi.input"]
    digest, size, lines, pieces = hashlib.sha256(), 0, 0, []
    if how == "read":
        pieces = [stream.read()]
    elif how == "sized":
        while piece := stream.read(10_000):
            pieces.append(piece)
    elif how == "readline":
        while line := stream.readline():
            pieces.append(line)
    elif how == "readline-limit":
        while line := stream.readline(100):
            pieces.append(line)
    elif how == "readlines":
        pieces = stream.readlines()
    elif how == "iter":
        pieces = list(stream)
    for piece in pieces:
        digest.update(piece)
        size += len(piece)
        lines += piece.endswith(b"\n")
    longest = max((len(p) for p in pieces), default=0)
    return _json(
        start_response, {"size": size, "lines": lines, "sha256": digest.hexdigest(), "longest": longest}
    )


def _stream(query: dict[str, list[str]]) -> Iterator[bytes]:
    gate = query.get("gate", [None])[0]
    count, size = int(query.get("n", ["3"])[0]), int(query.get("size", ["10"])[0])
    for i in range(count):
        yield (b"%d:" % i).ljust(size, b".")
        if gate and i == 0:
            deadline = time.monotonic() + 30
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.005)


def _endless(name: str) -> Iterator[bytes]:
    while True:
        yield b"x" * 65536
        time.sleep(0.001)
    _log(f"unreachable {name}")


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ["QUERY_STRING"])
    if path == "/environ":
        return _environ(environ, start_response)
    if path == "/read":
        return _read(environ, start_response)
    if path == "/raise":
        raise RuntimeError("wsgiedge raised before start_response")
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("wsgiedge raised after start_response")
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("wsgiedge failed half-way")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced\n"]
    if path == "/exc-info-late":
        return _exc_info_late(start_response)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        write(b"two ")
        return [b"three"]
    if path == "/close":
        name = query["name"][0]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if query.get("mode") == ["raise"]:
            return Recorded(name, _raising())
        if query.get("mode") == ["endless"]:
            return Recorded(name, _endless(name))
        return Recorded(name, [b"closed after this\n"])
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(query)
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        data = bytes(range(256)) * int(query.get("n", ["1"])[0])
        wrapper: Callable[..., Iterable[bytes]] = environ["wsgi.file_wrapper"]
        return wrapper(io.BytesIO(data), 1000)
    if path == "/headers":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
        )
        return [b"two cookies\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such page\n"]


def _raising() -> Iterator[bytes]:
    yield b"partial"
    raise RuntimeError("wsgiedge raised while iterating")


def _exc_info_late(start_response: StartResponse) -> Iterator[bytes]:
    """After a body byte the headers count as sent: start_response(exc_info) must re-raise."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial "
    try:
        raise ValueError("late")
    except ValueError:
        try:
            start_response("500 Internal Server Error", [], sys.exc_info())
        except ValueError:
            _log("reraised late")
    yield b"rest\n"
