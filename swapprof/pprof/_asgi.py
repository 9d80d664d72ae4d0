"""ASGI adapter: a plain ASGI callable for /debug/pprof/* and /debug/swapprof/*, optionally
wrapping another ASGI app that gets every other request (and the lifespan).

Profiles run on a thread of their own, so a 30 s profile never blocks the event loop or other
routes; an ``http.disconnect`` while one runs stops it. JSON routes run on the event loop
(an awaitable result is awaited).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from swapprof.pprof._http import MountedRouter
from swapprof.pprof._messages import MAX_BODY, Request, Response, error, locate
from swapprof.pprof._settings import JsonRoute, Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PprofASGI(MountedRouter):
    """The ASGI callable ``asgi_app()`` returns. ``close()`` stops tracemalloc if it started it."""

    def __init__(self, app: ASGIApp | None, settings: Settings) -> None:
        super().__init__(settings)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = locate(scope.get("path", ""), scope.get("root_path", ""), mounted=self.app is None)
            if path is not None:
                await self._serve(path, scope, receive, send)
                return
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
                await send({"type": "lifespan.startup.complete"})
        elif scope["type"] == "http":
            await _send(send, error(404, "Not Found"))
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1000})

    async def _serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if len(body) < MAX_BODY:
                body += message.get("body", b"")[: MAX_BODY - len(body)]
            if not message.get("more_body", False):
                break
        gone = threading.Event()
        query = dict(
            reversed(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request = Request(path, query, headers, scope.get("method", "GET"), body, lambda s: not gone.wait(s))
        request.raw_path = scope.get("path", "")
        response = self.router.refuse(request)
        found = self.router.json_route(path) if response is None else None
        if found is not None and found[0] and found[1] is not None:
            response = await self._json(found[0], found[1])
        if response is None:
            response = await self._in_thread(request, receive, gone)
        if response is not None and not gone.is_set():
            await _send(send, response, head=scope.get("method") == "HEAD")

    async def _json(self, name: str, route: Callable[[], object]) -> Response:
        try:
            value = route()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return self.router.route_failed(name, exc)
        return self.router.json_response(name, value)

    async def _in_thread(self, request: Request, receive: Receive, gone: threading.Event) -> Response | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Response | None] = loop.create_future()

        def settle(result: Response | None, exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(result)

        def work() -> None:
            try:
                result, exc = self.router.handle(request), None
            except BaseException as caught:  # handed to the awaiting task
                result, exc = None, caught
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle, result, exc)

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        threading.Thread(target=work, name="swapprof-pprof-request", daemon=True).start()
        watcher = asyncio.ensure_future(watch())
        try:
            return await done
        except asyncio.CancelledError:
            gone.set()
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _send(send: Send, response: Response, head: bool = False) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def asgi_app(
    app: ASGIApp | None = None,
    *,
    token: str | None = None,
    routes: Mapping[str, JsonRoute] | None = None,
    max_seconds: int | None = None,
    hz: int | None = None,
    tracemalloc: int | bool | None = None,
) -> PprofASGI:
    """An ASGI app serving /debug/pprof/* and /debug/swapprof/*; everything else goes to ``app``.

    Without ``app`` it answers other paths 404 and completes the lifespan itself.
    """
    settings = Settings.resolve(
        token=token, routes=routes, max_seconds=max_seconds, hz=hz, tracemalloc=tracemalloc
    )
    return PprofASGI(app, settings)
