"""The demo app (ASGI), the target of ``make demo``, the tests and the benchmarks.

Routes: ``GET /`` -> ``{"generation": N, "worker": I, "pid": P}``; ``/slow?ms=`` sleeps; ``/cpu?ms=``
burns CPU; ``/alloc?kb=`` allocates and keeps memory; ``/healthz``. Bad parameters get 400.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from swapprof.server._contract import ENV_GENERATION, worker_index

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_IDENTITY: dict[str, int] = {}  # read once per process, in the worker: forked workers share the import
MAX_MS = 60_000
MAX_KB = 1_048_576
_kept: list[bytearray] = []


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _int_param(scope: Scope, name: str, limit: int) -> int:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    if not values:
        raise ValueError(f"missing query parameter {name!r}")
    try:
        value = int(values[0])
    except ValueError:
        raise ValueError(f"{name}={values[0]!r} is not an integer") from None
    if not 0 <= value <= limit:
        raise ValueError(f"{name}={value} is outside 0..{limit}")
    return value


def _burn(ms: int) -> int:
    end = time.thread_time() + ms / 1000
    n = 0
    while time.thread_time() < end:
        n += sum(i * i for i in range(200))
    return n


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _identity() -> dict[str, int]:
    if _IDENTITY.get("pid") != os.getpid():
        _IDENTITY.update(
            generation=int(os.environ.get(ENV_GENERATION, "0")), worker=worker_index(), pid=os.getpid()
        )
    return dict(_IDENTITY)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    base = _identity()
    try:
        if path == "/":
            await _respond(send, 200, base)
        elif path == "/healthz":
            await _respond(send, 200, {"status": "ok", **base})
        elif path == "/slow":
            ms = _int_param(scope, "ms", MAX_MS)
            await asyncio.sleep(ms / 1000)
            await _respond(send, 200, {"slept_ms": ms, **base})
        elif path == "/cpu":
            ms = _int_param(scope, "ms", MAX_MS)
            _burn(ms)
            await _respond(send, 200, {"cpu_ms": ms, **base})
        elif path == "/alloc":
            kb = _int_param(scope, "kb", MAX_KB)
            _kept.append(bytearray(kb * 1024))
            await _respond(send, 200, {"allocated_kb": kb, "kept_kb": sum(map(len, _kept)) // 1024, **base})
        else:
            await _respond(send, 404, {"error": f"no route {path}", **base})
    except ValueError as exc:
        await _respond(send, 400, {"error": str(exc), **base})
