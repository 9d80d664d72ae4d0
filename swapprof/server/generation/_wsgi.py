"""WSGI apps as ASGI apps with one loop <-> thread hop each way per request (PEP 3333 on uvicorn).

a2wsgi, which swapprof used first (``SWAPPROF_WSGI_ADAPTER=a2wsgi`` still selects it), makes the
app's thread wait on the loop for every message: the status, each body chunk and the end are each
a round trip (``run_coroutine_threadsafe(...).result()``), so a hello answer costs the dispatch,
three round trips and the completion. Here (docs/apps.md has the measured difference)::

    loop    environ from the scope; the body that has arrived (up to PREREAD bytes) is read
            here, without the thread
      -> thread (the pool's queue)  the app runs; start_response stores; chunks are collected
      <- loop   (the pool's completion)  status, headers and the whole body, sent at once

A long or large answer streams: a thread holding FLUSH_BYTES hands them to the loop and waits
until they are written (back-pressure); a timer on the loop sends what the thread has collected
every HOLD seconds while the app runs (a slow generator streams; no chunk waits longer). An upload
beyond PREREAD is pulled by ``wsgi.input``, FLUSH_BYTES or the rest per round trip. A disconnect
makes the thread's next write or read raise ClientDisconnected; ``close()`` of the answer is
always called. An app error before any byte was sent is re-raised to uvicorn, which answers 500;
after, uvicorn closes the connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from swapprof.server._contract import ENV_WSGI_ADAPTER
from swapprof.server.generation._wsgi_environ import Environ, WSGIInput, build_environ

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

PREREAD = 64 * 1024  # request body read on the loop before the app runs
FLUSH_BYTES = 64 * 1024  # answer bytes collected before the thread hands them over; upload pull size
HOLD = 0.01  # s: the longest an answer's collected bytes wait while the app runs on
ADAPTERS = ("swapprof", "a2wsgi")


class ClientDisconnected(OSError):
    """The client went away (raised in the app's thread by ``wsgi.input`` and by ``write``)."""


def wsgi_adapter(app: WSGIApp, threads: int, adapter: str | None = None) -> ASGIApp:
    """``app`` as an ASGI app running in ``threads`` threads: this module's bridge, or a2wsgi's
    ``WSGIMiddleware`` when ``adapter`` (default: ``SWAPPROF_WSGI_ADAPTER``) is ``a2wsgi``."""
    name = adapter or os.environ.get(ENV_WSGI_ADAPTER) or ADAPTERS[0]
    if name not in ADAPTERS:
        raise ValueError(f"{ENV_WSGI_ADAPTER}={name!r}: expected one of {', '.join(ADAPTERS)}")
    if name == "a2wsgi":
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app, workers=threads)  # type: ignore[arg-type, return-value]
    return WSGIBridge(app, threads)


class WSGIBridge:
    """An ASGI 3 app that runs a WSGI app in a pool of ``threads`` threads (module docstring)."""

    def __init__(self, app: WSGIApp, threads: int) -> None:
        self.app = app
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="swapprof-wsgi")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":  # a websocket: WSGI has none
            await send({"type": "websocket.close", "code": 1000})
            return
        environ = build_environ(scope)
        body, more = b"", True
        if environ.get("HTTP_EXPECT", "").lower() != "100-continue":  # else the app asks for it
            arrived = await _preread(receive)
            if arrived is None:
                return  # gone before the app saw the request
            body, more = arrived
        loop = asyncio.get_running_loop()
        exchange = _Exchange(loop, receive, send, body_complete=not more)
        environ["wsgi.input"] = WSGIInput(body, more, exchange.fetch)
        exchange.timer = loop.call_later(HOLD, exchange.tick)
        run = contextvars.copy_context().run
        try:
            try:
                final = await loop.run_in_executor(self.executor, run, exchange.run, self.app, environ)
            except ClientDisconnected:
                return
            except asyncio.CancelledError:  # the drain gave up on it: nothing more is sent
                raise
            except BaseException:
                if exchange.tail is not None:  # what was handed over goes out before the error
                    await asyncio.wait([exchange.tail])
                raise
            if exchange.tail is not None:
                await exchange.tail
            for message in final:
                await send(message)
        finally:
            exchange.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=False)  # idle threads end; running ones finish
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _preread(receive: Receive) -> tuple[bytes, bool] | None:
    """The body as far as it has arrived, up to PREREAD bytes, and whether more is to come;
    None when the client disconnected."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    more: bool = message.get("more_body", False)
    if not more:
        return body, False
    chunks, size = [body], len(body)
    while more and size < PREREAD:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    return b"".join(chunks), more


def _settle(done: concurrent.futures.Future[Any], task: asyncio.Future[Any]) -> None:
    """Pass ``task``'s outcome to the thread waiting on ``done`` (a cancel means: gone)."""
    if task.cancelled():
        done.set_exception(ClientDisconnected("the answer was abandoned"))
    elif task.exception() is not None:
        done.set_exception(task.exception())
    else:
        done.set_result(task.result())


class _Exchange:
    """One request between the app's thread and the loop. The thread collects the answer under
    ``lock``; whoever takes it (the thread at FLUSH_BYTES, the loop's timer, the end) sends it
    in order: every batch is sent after the one before (``tail``)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, receive: Receive, send: Send, body_complete: bool
    ) -> None:
        self.loop, self.receive, self.send = loop, receive, send
        self.body_complete = body_complete
        self.lock = threading.Lock()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False  # a body byte was written: the headers count as sent (PEP 3333)
        self.start_taken = False  # the start message left in a batch
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False  # the app has finished; the loop sends the rest
        self.gone = False  # the client went away, or the loop side stopped waiting
        self.tail: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: list[asyncio.Task[Any]] = []  # fetches of the body, the disconnect watch
        self.watching = False

    # ------------------------------------------------------------------ the app's thread
    def run(self, app: WSGIApp, environ: Environ) -> list[Message]:
        """Call the app, collect its answer; return what is left to send."""
        iterable = app(environ, self.start_response)
        try:
            for data in iterable:
                if data:
                    self.write(data)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        if self.status is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        with self.lock:
            self.done = True
            return self._take(more=False)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        code = status[:3]
        if not (code.isdigit() and len(status) >= 3 and status[3:4] in ("", " ")):
            raise ValueError(f"WSGI status {status!r} is not '<3 digits> <reason>'")
        self.status = int(code)
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``, and every chunk of the answer's iterable."""
        if self.status is None:
            raise RuntimeError("write() before start_response")
        if type(data) is not bytes:
            data = bytes(data)  # bytes-like; str raises TypeError
        with self.lock:
            if self.gone:
                raise ClientDisconnected("the client went away")
            self.started = True
            self.chunks.append(data)
            self.size += len(data)
            if self.size < FLUSH_BYTES:
                return
            batch = self._take(more=True)
        self._call(self._enqueue, batch)  # waits until written: back-pressure

    def fetch(self) -> tuple[bytes, bool]:
        """More of the request body: up to FLUSH_BYTES, and whether more is to come."""
        result: tuple[bytes, bool] = self._call(self._start_fetch)
        return result

    def _call(self, method: Callable[..., None], *args: Any) -> Any:
        """Run ``method(*args, done)`` on the loop; wait for ``done``."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(functools.partial(method, *args, done))
        return done.result()

    def _take(self, more: bool) -> list[Message]:
        """What was collected, as ASGI messages (hold ``lock``)."""
        batch: list[Message] = []
        if not self.start_taken:
            self.start_taken = True
            batch.append({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if self.chunks or not more:
            body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            batch.append({"type": "http.response.body", "body": body, "more_body": more})
            self.chunks, self.size = [], 0
        return batch

    # ------------------------------------------------------------------ the loop
    def tick(self) -> None:
        """Timer: send what the thread has collected while the app runs on; re-arm."""
        with self.lock:
            batch = self._take(more=True) if self.chunks and not (self.done or self.gone) else None
        if batch:
            self._enqueue(batch, None)
        self.timer = self.loop.call_later(HOLD, self.tick)

    def _enqueue(self, batch: list[Message], done: concurrent.futures.Future[Any] | None) -> None:
        if self.gone:
            if done is not None:
                done.set_exception(ClientDisconnected("the client went away"))
            return
        self.tail = self.loop.create_task(self._send_after(self.tail, batch))
        if done is not None:
            self.tail.add_done_callback(functools.partial(_settle, done))
        if self.body_complete and not self.watching:  # streaming: notice a disconnect
            self.watching = True
            self.tasks.append(self.loop.create_task(self._watch()))

    async def _send_after(self, before: asyncio.Task[None] | None, batch: list[Message]) -> None:
        if before is not None:
            await before
        for message in batch:
            await self.send(message)

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True  # also once the answer is complete: nothing more is written then

    def _start_fetch(self, done: concurrent.futures.Future[Any]) -> None:
        if self.gone:
            done.set_exception(ClientDisconnected("the client went away"))
            return
        task = self.loop.create_task(self._read_more())
        task.add_done_callback(functools.partial(_settle, done))
        self.tasks.append(task)

    async def _read_more(self) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size < FLUSH_BYTES:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ClientDisconnected("the client went away while sending the body")
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        self.body_complete = not more
        return b"".join(chunks), more

    def close(self) -> None:
        """The request is over on the loop side: stop the timer; the thread's next write or
        read raises ClientDisconnected (when the request ended early)."""
        self.gone = True
        if self.timer is not None:
            self.timer.cancel()
        for task in [*self.tasks, *([self.tail] if self.tail else [])]:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # seen: an error was the connection's end already
