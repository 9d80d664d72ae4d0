"""PEP 3333's side of the WSGI bridge (``_wsgi``): the environ built from an ASGI scope,
``wsgi.input`` over a body that may still be arriving, ``wsgi.file_wrapper``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import IO, Any

Environ = dict[str, Any]


_KEYS: dict[bytes, str | None] = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}


def _key(name: bytes) -> str | None:
    """The environ key of a header (cached); None for a name with ``_``, which a client could use
    to pass for another header (``X_User`` for ``X-User``): dropped, as gunicorn does."""
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        text = name.decode("latin-1")
        key = None if "_" in text else "HTTP_" + text.upper().replace("-", "_")
        if len(_KEYS) < 4096:
            _KEYS[name] = key
    return key


def build_environ(scope: MutableMapping[str, Any]) -> Environ:
    """PEP 3333's environ for an ASGI HTTP scope (``wsgi.input`` is added by the caller).
    Repeated headers are joined with ``,``; the path is bytes-as-latin-1, as PEP 3333 says."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root and path.startswith(root):  # uvicorn's path includes root_path
        path = path[len(root) :]
    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + scope["http_version"],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # reading to the end is safe, also for a chunked upload
        "wsgi.file_wrapper": FileWrapper,
    }
    for name, value in scope["headers"]:
        key = _key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        environ[key] = environ[key] + "," + text if key in environ else text
    server = scope.get("server")
    if server and server[1] is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
    else:  # a unix socket: the name the client asked for
        host = environ.get("HTTP_HOST", "localhost")
        name, colon, port = host.rpartition(":")
        if not (colon and port.isdigit()):
            name, port = host, "443" if environ["wsgi.url_scheme"] == "https" else "80"
        environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    return environ


class FileWrapper:
    """``wsgi.file_wrapper``: a file read in blocks of ``blksize``; closed with the answer."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike, self.blksize = filelike, blksize

    def __iter__(self) -> Iterator[bytes]:
        while data := self.filelike.read(self.blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class WSGIInput:
    """``wsgi.input``: the body read so far, and ``fetch`` for more (one round trip each)."""

    def __init__(self, body: bytes, more: bool, fetch: Callable[[], tuple[bytes, bool]]) -> None:
        self._buffer = bytearray(body)
        self._more = more
        self._fetch = fetch

    def _fill(self) -> bool:
        """Fetch more of the body; False when it has all arrived."""
        if not self._more:
            return False
        data, self._more = self._fetch()
        self._buffer += data
        return True

    def _cut(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._cut(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._cut(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0:
                n = end + 1
                break
            scanned = len(self._buffer)
            if 0 <= limit <= scanned or not self._fill():
                n = scanned
                break
        return self._cut(n if limit < 0 else min(n, limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line
