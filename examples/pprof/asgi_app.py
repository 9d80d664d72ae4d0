"""An ASGI app with /debug/pprof/* and /debug/swapprof/* in front of it, served by uvicorn.

    .venv/bin/python examples/pprof/asgi_app.py            # http://127.0.0.1:8000/

``asgi_app(app)`` answers the debug paths itself and hands every other request (and the
lifespan) to ``app``. With Starlette or FastAPI, mount it instead::

    from starlette.routing import Mount
    routes = [..., Mount("/debug", app=swapprof.pprof.asgi_app())]   # or app.mount("/debug", ...)

The token makes the debug routes answer 401 without ``Authorization: Bearer <token>``::

    curl -H 'Authorization: Bearer example' 'http://127.0.0.1:8000/debug/pprof/goroutine?debug=1'
    swapprof profile http://127.0.0.1:8000 --seconds 5 --token example --html flame.html
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import uvicorn

import swapprof.pprof

STARTED = time.time()


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The application: /fib burns CPU on the event loop, /slow awaits, anything else says hi."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/fib":
        body = str(fib(27)).encode()
    elif scope["path"] == "/slow":
        await asyncio.sleep(5)
        body = b"slept"
    else:
        body = b"hello; try /fib, /slow, /debug/pprof/\n"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


debug_app = swapprof.pprof.asgi_app(
    app,
    token="example",
    routes={"uptime": lambda: {"seconds": round(time.time() - STARTED, 1)}},
)

if __name__ == "__main__":
    uvicorn.run(debug_app, host="127.0.0.1", port=8000)
