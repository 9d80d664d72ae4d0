"""Test apps written into a temporary --app-dir, so each generation imports them afresh."""

from __future__ import annotations

from pathlib import Path

FAULTY_APP = """
import os
import pathlib
import signal
import time

HERE = pathlib.Path(__file__).parent
FAULT = (HERE / "FAULT").read_text().strip() if (HERE / "FAULT").exists() else ""
VERSION = (HERE / "VERSION").read_text().strip() if (HERE / "VERSION").exists() else "1"

if FAULT == "import":
    raise RuntimeError("deliberate import failure")
if FAULT == "import-worker-1" and os.environ.get("SWAPPROF_WORKER") == "1":
    raise RuntimeError("deliberate import failure in worker 1")
if FAULT == "hang":
    time.sleep(3600)

import asyncio

from swapprof.server.demo import app as demo_app

SERVED = [0]


async def app(scope, receive, send):
    if scope["type"] == "http" and FAULT == "errors":  # a version answering 500 to 1 in 5
        SERVED[0] += 1
        if SERVED[0] % 5 == 0:
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"3")]})
            await send({"type": "http.response.body", "body": b"bad"})
            return
    if scope["type"] == "http" and FAULT == "slow":  # a version 80 ms slower per request
        await asyncio.sleep(0.08)
    if scope["type"] == "lifespan" and FAULT == "crash":
        message = await receive()
        os.kill(os.getpid(), signal.SIGABRT)
    if scope["type"] == "lifespan" and FAULT == "crash-worker-1" and os.environ.get("SWAPPROF_WORKER") == "1":
        message = await receive()  # the import is shared by forked workers: worker 1 dies later
        os.kill(os.getpid(), signal.SIGABRT)
    if scope["type"] == "http" and scope["path"] == "/version":
        body = VERSION.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http" and scope["path"] == "/healthz" and FAULT == "probe":
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"sick"})
        return
    await demo_app(scope, receive, send)
"""


def write_faulty_app(app_dir: Path) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "faultyapp.py").write_text(FAULTY_APP)
    return app_dir


def set_fault(app_dir: Path, fault: str) -> None:
    path = app_dir / "FAULT"
    if fault:
        path.write_text(fault)
    elif path.exists():
        path.unlink()


async def ok_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """An ASGI app answering ``ok`` to every request, with a lifespan that always starts."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
