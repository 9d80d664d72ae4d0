"""Loop <-> thread hops per WSGI request, counted in-process for each adapter.

A hop is one thread waking another: the loop handing a request to the pool (``submit``), or a
thread scheduling work on the loop (``call_soon_threadsafe``: a2wsgi's every message, the pool's
completion). When the app's thread waits for that work (a2wsgi's ``future.result()``), the loop
wakes it back: a round trip. Counted on a plain asyncio loop for a hello answer of one chunk and
of three, with a GET body that has already arrived (what a keep-alive client's request is).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from swapprof.server.generation._wsgi import ADAPTERS, wsgi_adapter

SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
    "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
}  # fmt: skip


def hello(chunks: int) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(6 * chunks))])
        return [b"hello\n"] * chunks

    return app


class _Counting(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.threadsafe = 0
        self.submits = 0
        self.waits = 0  # a thread blocked on a future the loop settles

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
        if threading.current_thread() is not threading.main_thread():
            self.threadsafe += 1
        return super().call_soon_threadsafe(callback, *args, context=context)

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:
        self.submits += 1
        return super().run_in_executor(executor, func, *args)


def count(adapter: str, chunks: int, requests: int = 200) -> dict[str, float]:
    loop = _Counting()
    original = concurrent.futures.Future.result

    def result(self: Any, timeout: float | None = None) -> Any:
        if threading.current_thread() is not threading.main_thread():
            loop.waits += 1
        return original(self, timeout)

    concurrent.futures.Future.result = result  # type: ignore[method-assign]
    try:
        asgi = wsgi_adapter(hello(chunks), 4, adapter)

        async def one() -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            sent: list[Any] = []

            async def send(message: Any) -> None:
                sent.append(message)

            await asgi(dict(SCOPE), receive, send)
            assert sent[-1].get("more_body") is False or sent[-1]["body"] == b"", sent

        async def many() -> None:
            for _ in range(requests):
                await one()

        loop.run_until_complete(many())
    finally:
        concurrent.futures.Future.result = original  # type: ignore[method-assign]
        loop.close()
    to_loop = loop.threadsafe / requests
    to_thread = (loop.submits + loop.waits) / requests
    return {"thread_to_loop": to_loop, "loop_to_thread": to_thread, "hops": to_loop + to_thread}


def all_counts() -> dict[str, dict[str, dict[str, float]]]:
    return {a: {f"{n}_chunk": count(a, n) for n in (1, 3)} for a in ADAPTERS}


if __name__ == "__main__":
    import json

    print(json.dumps(all_counts(), indent=2))
